// kaizen/models.hpp - umbrella header: the decoder families (the Llama module, which also covers SmolLM2,
// TinyLlama, Qwen2/2.5 and Qwen3), its KV-cache sampler, and loading from Hugging Face folders and GGUF files
// (namespace kaizen::lm). Writing a checkpoint needs a tokenizer too: include <kaizen/models/save_pretrained.hpp>
// and link kaizen::tokenizers.
#pragma once

#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/lora.hpp>
#include <kaizen/models/pretrained.hpp>
#include <kaizen/models/value_head.hpp>
