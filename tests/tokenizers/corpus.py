"""Deterministic test corpus for the tokenizer conformance tests (kaizen tests/tokenizers).

`corpus(n)` returns n strings mixing ASCII prose, contractions, accented Latin, CJK, emoji, digit runs,
white-space runs (spaces, tabs, newlines, CRLF, Unicode spaces), source code and special tokens inside
text. Entries may hold newlines; they are stored as a JSON list, not as lines of a file.
"""
import random

WORDS = ("the quick brown fox jumps over lazy dog model reward policy gradient token batch answer "
         "question learning rate sample value function search tree node prompt completion group "
         "advantage ratio clip entropy loss step train test data set Hello World OpenAI LLaMA Qwen").split()
CONTRACTIONS = ["it's", "don't", "we're", "I've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "We'RE", "they'LL",
                "o'clock", "rock'n'roll", "'s", "''", "'"]
ACCENTS = ["café", "naïve", "Zürich", "São Paulo", "Ångström", "œuvre", "Dvořák", "Łódź", "façade", "jalapeño",
           "Ελληνικά", "Привет мир", "ärger", "ÉCOLE", "Māori", "Ðó", "smörgåsbord", "crème brûlée"]
DECOMPOSED = ["cafe\u0301", "n\u0303o", "A\u030angstro\u0308m"]
CJK = ["中文句子测试", "机器学习模型", "日本語のテキストです。", "カタカナとひらがな", "한국어 문장입니다", "汉字，标点！",
       "東京都", "강화학습"]
EMOJI = ["😀", "🎉🎉", "👍🏽", "👨\u200d👩\u200d👧", "❤️", "🇫🇷🇯🇵", "🤖 robot", "✨", "🔥🔥🔥", "☕"]
DIGITS = ["1234567890", "3.14159", "2026-12-03", "1,000,000", "42", "007", "12345678901234567890", "¹²³", "½",
          "٣٤٥", "１２３", "0x1F", "1e-5", "v2.11.0", "99%", "$19.99"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", " \t ", "\n", "\n\n", "\n\n\n", "\r\n", "\u00a0", "\u3000", "\u2009",
          "    ", "        ", " \n ", "\n  \n"]
CODE = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "if x == 3 and y != 4:\n        print(\"ok\")", "#include <vector>\nstd::vector<int> v{1, 2, 3};",
        "SELECT * FROM t WHERE id=7;", "{\"key\": [1, 2, {\"a\": null}]}", "x = y ** 2 // 3 % 5",
        "fn main() -> Result<(), Box<dyn Error>> {}", "<div class=\"a\">text</div>", "a_b-c.d/e\\f",
        "lambda: [i for i in range(10)]", "    # comment\n    pass"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start", "<|", "|>", "<think>",
            "</think>"]
PUNCT = [".", ",", "!", "?", "...", ";", ":", "—", "–", "«", "»", "“", "”", "(", ")", "[", "]", "@", "#", "&&",
         "->", "=>", "!=", "<=", "__", "--"]


def fragment(rng):
    kind = rng.randrange(11)
    if kind == 0:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
    if kind == 1:
        return rng.choice(CONTRACTIONS)
    if kind == 2:
        return rng.choice(ACCENTS)
    if kind == 3:
        return rng.choice(CJK)
    if kind == 4:
        return rng.choice(EMOJI)
    if kind == 5:
        return rng.choice(DIGITS)
    if kind == 6:
        return rng.choice(SPACES)
    if kind == 7:
        return rng.choice(CODE)
    if kind == 8:
        return rng.choice(SPECIALS)
    if kind == 9:
        return rng.choice(PUNCT)
    return rng.choice(WORDS).upper() if rng.random() < 0.3 else rng.choice(WORDS)


def corpus(n=2400, seed=20261203, decomposed=True):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            parts.append(fragment(rng))
            r = rng.random()
            parts.append(" " if r < 0.6 else ("" if r < 0.8 else rng.choice(SPACES)))
        line = "".join(parts)
        if rng.random() < 0.1:
            line = line.strip()
        out.append(line)
    # long runs: the merge heap and the JIT stack on long pieces
    out += [" " * 300, "a" * 2000, "\n" * 50 + "x", "9" * 1000, "😀" * 200, "ab" * 700, "\t " * 100,
            "", " ", "\n", "x", "é", "中", "<|im_end|>", "<|im_end|><|im_end|>", " <|im_end|> "]
    if decomposed:
        out += [d + " " + w for d in DECOMPOSED for w in WORDS[:4]]
    return out


def training_text(seed=7):
    """Extra text to train the small tokenizers on (so merges cover words, digits and code)."""
    rng = random.Random(seed)
    return [" ".join(fragment(rng) for _ in range(20)) for _ in range(4000)]
