// kaizen/tokenizers.hpp - umbrella header: byte-level BPE tokenizers and chat templates
// (target kaizen::tokenizers: core + PCRE2). See docs/tokenizers.md.
#pragma once

#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/chat_template.hpp>
#include <kaizen/tokenizers/gguf_vocab.hpp>
#include <kaizen/tokenizers/pretokenize.hpp>
#include <kaizen/tokenizers/tokenizer_json.hpp>
#include <kaizen/tokenizers/tokenizer_json_write.hpp>
