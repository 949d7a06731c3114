// kaizen/io.hpp - umbrella header: checkpoint formats, torch-free (target kaizen::core).
// safetensors read/write (sharded), GGUF reading and dequantisation, Hugging Face config.json and GGUF
// metadata to DecoderConfig. See docs/io.md.
#pragma once

#include <kaizen/io/decoder_config.hpp>
#include <kaizen/io/float16.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/io/gguf_model.hpp>
#include <kaizen/io/gguf_quants.hpp>
#include <kaizen/io/hf_config.hpp>
#include <kaizen/io/mapped_file.hpp>
#include <kaizen/io/safetensors.hpp>
