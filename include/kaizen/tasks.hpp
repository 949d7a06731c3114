// kaizen/tasks.hpp - umbrella header: embedded verifiable tasks and the character tokenizer.
#pragma once

#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/countdown.hpp>
#include <kaizen/tasks/mixture.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
