#!/usr/bin/env python3
"""Writes corpus.jsonl: realistic model outputs for the math verifier, each with the gold answer and
a label (true = the output's final answer is right). Labels are right by construction: every
(gold, answer, label) triple below was written by hand; the templates only wrap an answer in a
chain of thought. Rerun: python3 make_corpus.py > corpus.jsonl (deterministic)."""
import json
import random

rng = random.Random(20261203)

# (gold, answer as the model writes it) pairs that ARE equal.
EQUAL = [
    (r"\sqrt{18}", r"3\sqrt{2}"), (r"3\sqrt{2}", r"\sqrt{18}"), (r"2^{10}", "1024"), ("1024", r"2^{10}"),
    ("0.5", r"\frac12"), (r"\frac{1}{2}", "0.5"), (r"\frac{1}{2}", r"\dfrac{1}{2}"), (r"\frac{1}{2}", "1/2"),
    (r"\frac{3}{4}", "0.75"), ("0.75", r"\tfrac{3}{4}"), (r"\frac{6}{8}", r"\frac{3}{4}"), ("2.50", "2.5"),
    (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt 3}{2}"), (r"\frac{\sqrt{3}}{2}", r"\dfrac{\sqrt{3}}{2}"),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}"), (r"2\sqrt{3}", r"\sqrt{12}"), (r"\sqrt[3]{27}", "3"),
    (r"4\pi", r"4 \pi"), (r"\frac{\pi}{4}", r"\pi/4"), (r"2\pi", r"\pi \cdot 2"), (r"\pi r^2", r"r^2\pi"),
    (r"(x+1)^2", r"x^2+2x+1"), (r"x^2-1", r"(x-1)(x+1)"), (r"\frac{x}{2}", r"0.5x"), (r"2x+3", r"3+2x"),
    ("1000000", r"10^6"), ("1500000", r"1.5 \times 10^{6}"), ("0.001", r"10^{-3}"), ("1500", "1.5e3"),
    ("0.00025", r"2.5 \times 10^{-4}"), ("3", "3.0"), ("3", "3.000"), ("-3", r"−3"), ("-7", r"-\,7"),
    ("12", "１２"), ("2024", "２０２４"), ("5", "five"), ("12", "twelve"), ("21", "twenty-one"), ("40", "forty"),
    ("1234", "1,234"), ("1234567", "1,234,567"), ("1250", r"1{,}250"), ("1234", r"1\,234"), ("1234", r"1\ 234"),
    ("1250", r"\$1{,}250"), ("18", r"\$18"), ("18.50", r"\$18.50"), ("45", r"45\%"), ("45", "45%"),
    ("0.45", r"45\%"), ("12", r"12\text{ cm}"), ("12", r"12 \text{ meters}"), ("7", r"7\text{ apples}"),
    ("60", r"60^\circ"), ("60", r"60^{\circ}"), ("3", "x = 3"), ("3", "x=3"), ("-2", r"y = -2"),
    (r"\frac{1}{3}", r"\displaystyle \frac{1}{3}"), (r"\frac{5}{2}", r"2\frac{1}{2}"), (r"\frac{7}{4}", r"1\tfrac{3}{4}"),
    (r"\frac{5}{2}", "2 1/2"), (r"\frac{5}{36}", r"\frac {5}{36}"), (r"\{1,2,3\}", r"\{3,1,2\}"),
    ("1, 2, 3", "3, 2, 1"), (r"\{-1, 4\}", r"\{4, -1\}"), ("-1, 4", "x = 4, x = -1"), ("-2, 2", r"\pm 2"),
    (r"1 \pm \sqrt{2}", r"1+\sqrt{2}, 1-\sqrt{2}"), ("(1, 2]", r"(1, 2]"), ("[0, 1)", r"\left[0, 1\right)"),
    (r"(-\infty, 3)", r"(-\infty,3)"), (r"(-\infty, 0) \cup (1, \infty)", r"(1,\infty)\cup(-\infty,0)"),
    ("[2, 5)", r"x \in [2, 5)"), ("(3, -1)", r"\left( 3, -1 \right)"), ("(1, 2, 3)", "(1,2,3)"),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}"),
    (r"\begin{pmatrix}1\\0\end{pmatrix}", r"\begin{pmatrix} 1 \\ 0 \end{pmatrix}"),
    (r"\begin{pmatrix}2&0\\0&2\end{pmatrix}", r"\begin{pmatrix} \frac{4}{2} & 0 \\ 0 & 2 \end{pmatrix}"),
    ("y=2x+1", "y = 1 + 2x"), ("y=2x+1", "2x - y + 1 = 0"), (r"\text{Monday}", "Monday"),
    (r"\text{Monday}", r"\textbf{Monday}"), ("10", r"\binom{5}{2}"), ("120", "5!"), ("1", r"\sin^2 x + \cos^2 x"),
    (r"\frac{1}{2}", r"\sin\frac{\pi}{6}"), ("2", r"\log_2 4" if False else r"\sqrt{4}"), ("e^2", r"e \cdot e"),
    ("3+4i", "4i+3"), (r"\frac{2}{3}", r"\frac{4}{6}"), ("0.2", r"\frac{1}{5}"), ("-0.5", r"-\frac{1}{2}"),
    (r"-\frac{1}{2}", r"\frac{-1}{2}"), (r"\frac{9}{4}", "2.25"), ("100", r"10^2"), ("8", r"2^3"),
    (r"6\sqrt{2}", r"\sqrt{72}"), (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt 2}"), ("17", "17."), ("17", r"\mathbf{17}"),
]

# (gold, answer) pairs that look right but are NOT equal.
UNEQUAL = [
    (r"\sqrt{18}", r"3\sqrt{3}"), (r"\sqrt{18}", r"2\sqrt{3}"), (r"2^{10}", "1000"), ("1024", r"2^{9}"),
    ("0.5", r"\frac13"), (r"\frac{1}{3}", "0.3333333"), (r"\frac{1}{3}", "0.33"), (r"\frac{2}{3}", "0.667"),
    (r"\sqrt{2}", "1.414"), (r"\pi", "3.14"), (r"\pi", "3.14159"), (r"\frac{22}{7}", r"\pi"), (r"2\pi", r"\pi"),
    ("1234", "1,243"), ("1234", "12,34"), ("1250", "125"), ("45", "4.5"), ("0.45", r"4.5\%"), ("12", r"12^2"),
    ("3", "x = -3"), ("-3", "3"), ("-3", "−2"), ("12", "１３"), ("5", "six"), ("21", "twenty"),
    (r"\frac{5}{2}", r"2\frac{1}{3}"), (r"\frac{5}{36}", r"\frac{5}{63}"), (r"\{1,2,3\}", r"\{1,2\}"),
    (r"\{1,2,3\}", r"\{1,2,4\}"), ("1, 2, 3", "1, 2, 3, 4"), ("-1, 4", "4"), ("-2, 2", "2"), ("2", r"\pm 2"),
    ("(1, 2]", "[1, 2]"), ("(1, 2]", "(1, 2)"), ("[0, 1)", "[0, 1]"), (r"(-\infty, 3)", r"(-\infty, 3]"),
    ("(3, -1)", "(-1, 3)"), ("(1, 2, 3)", "(1, 3, 2)"), (r"(-\infty, 0) \cup (1, \infty)", r"(-\infty, 0) \cup [1, \infty)"),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}"),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&2&3&4\end{pmatrix}"),
    ("y=2x+1", "y = 2x - 1"), ("(x+1)^2", "x^2+1"), ("x^2-1", "(x-1)^2"), ("2x+3", "2x+4"),
    (r"\text{Monday}", "Tuesday"), ("10", r"\binom{5}{3} + 1"), ("120", "4!"), ("1500000", r"1.5 \times 10^{5}"),
    ("0.001", r"10^{-2}"), ("1500", "1.5e4"), ("3+4i", "3-4i"), ("e^2", "2e"), ("100", "10"),
    (r"\frac{9}{4}", "2.5"), ("8", "2^4"), ("60", r"30^\circ"), ("7", r"7\text{ apples} + 1"), ("0", "1"),
    ("18", r"\$19"), ("17", "71"), (r"6\sqrt{2}", r"\sqrt{62}"), ("2", r"\sqrt{2}"), ("4", r"2^{10^{9}}"),
]

OPEN = [
    "Let's work through this step by step.\n",
    "We need to find the requested value.\n",
    "First, let me restate the problem.\n",
    "",
    "To solve this, set up the equation carefully.\n",
]
MIDDLE = [
    "Substituting the known values and simplifying gives the expression below.\n",
    "After combining like terms we get the result.\n",
    "Checking the arithmetic once more, everything is consistent.\n",
    "Using the formula and simplifying, we obtain it.\n",
    "",
]
WRAP = [
    "Therefore, the final answer is $\\boxed{{{a}}}$.",
    "So the answer is \\boxed{{{a}}}.",
    "Thus we get\n\\[\n\\boxed{{{a}}}\n\\]",
    "The final answer is $\\boxed{{{a}}}$. I hope it is correct.",
    "Hence, $\\boxed{{{a}}}$ is the answer.",
    "<answer>{a}</answer>",
    "Final Answer: The final answer is ${a}$.",
]


def cot(answer):
    return rng.choice(OPEN) + rng.choice(MIDDLE) + rng.choice(WRAP).format(a=answer)


items = []


def add(kind, text, gold, label, finish="stop"):
    items.append({"id": len(items), "kind": kind, "text": text, "gold": gold, "label": label, "finish": finish})


for gold, answer in EQUAL:
    for _ in range(3):
        add("equivalent", cot(answer), gold, True)
for gold, answer in UNEQUAL:
    for _ in range(2):
        add("look-alike", cot(answer), gold, False)

# Hedges: the right value among two or more is not an answer.
for gold, hedge in [("3", "2 or 3"), ("3", r"2 \text{ or } 3"), ("-1", "-1 or 1"), ("12", "either 12 or 13"),
                    (r"\frac{1}{2}", r"\frac{1}{2} \text{ or } \frac{1}{3}"), ("5", "5 or maybe 6"), ("4", "4 or 5"),
                    ("7", "possibly 7"), ("8", "8 or 9"), ("10", "10 or 100")]:
    add("hedge", cot(hedge), gold, False)
    add("hedge", f"I am not sure. The answer could be {hedge}.", gold, False)

# Several different final answers.
for gold, first, second in [("3", "2", "3"), ("3", "3", "2"), ("12", "12", "13"), ("5", "4", "5"), ("0.5", r"\frac12", "2"),
                            ("9", "9", "7"), ("1", "0", "1"), ("6", "6", "8")]:
    add("conflicting", f"One approach gives $\\boxed{{{first}}}$. Another approach gives $\\boxed{{{second}}}$.", gold, False)
    add("conflicting", f"So the answer is \\boxed{{{first}}}.\n\nWait, let me double check. The answer is \\boxed{{{second}}}.", gold, False)
# Consistent repeated boxes are one answer.
for gold in ["3", "12", r"\frac{1}{2}"]:
    add("repeated", f"The result is $\\boxed{{{gold}}}$. Double-checking confirms $\\boxed{{{gold}}}$.", gold, True)

# Truncated outputs (stopped on the token limit): never correct, even when the right number appears.
for gold, partial in [("36", "We compute 12 * 3 = 36. Then we need to add the remaining"),
                      ("42", "Step 1: 6 * 7 = 42.\nStep 2: now subtract the"),
                      ("5", "So x = 5, and substituting back into the second equation we"),
                      ("7", "The answer is \\boxed{7"), ("10", "Let me think: 2 + 8 = 10, but also we have"),
                      ("3", "<think>\nFirst, 1 + 2 = 3. Now consider"), ("100", "Thus 10^2 = 100 and the total is \\boxed{1"),
                      ("8", "The cube has 8 vertices, and each"), ("2", "So we get 2, however we must check"),
                      ("9", "3 squared is 9, and the next step")]:
    add("truncated", partial, gold, False, "length")
    add("truncated-text", partial, gold, False)

# "The answer is X, not Y"
for right, wrong in [("7", "9"), ("12", "15"), ("4", "5"), ("100", "10"), ("3", "4")]:
    add("answer-phrase", f"Checking each case, the answer is {right}, not {wrong}.", right, True)
    add("answer-phrase", f"Checking each case, the answer is {right}, not {wrong}.", wrong, False)

# GSM8K style
for gold, answer, label in [("72", "72", True), ("72", "$72", True), ("1200", "1,200", True), ("18", "18.00", True),
                            ("5", "6", False), ("1200", "120", False), ("40", "forty", True), ("3", "3 hours", True)]:
    add("gsm8k", f"Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nSo she sold 48+24 = <<48+24=72>>72 in total.\n#### {answer}", gold, label)

# Think blocks: the final answer after </think> counts; guesses inside do not.
for gold, inside, after, label in [("6", "5", "6", True), ("5", "5", "6", False), ("12", "11", "12", True),
                                   (r"\frac{1}{2}", "0.4", r"\frac{1}{2}", True), ("8", "8", "9", False)]:
    add("think", f"<think>\nMaybe it is \\boxed{{{inside}}}... let me recheck the computation.\n</think>\nThe answer is $\\boxed{{{after}}}$.", gold, label)
for gold in ["4", "15"]:
    add("think-unclosed", f"<think>\nWe have 2 + 2 = {gold} so the answer is \\boxed{{{gold}}}", gold, False, "length")

# Last number fallback (no box, no phrase)
for gold, text, label in [("15", "She has 10 + 5 = 15 apples.", True), ("15", "She has 10 + 5 = 16 apples.", False),
                          ("8", "2^3 = 8", True), ("0.25", "The probability is 1/4.", True),
                          ("0.25", "The probability is 1/3.", False), ("-4", "The minimum value is −4.", True),
                          ("1250", r"The cost is $\$1{,}250$.", True), (r"\frac{5}{36}", r"The probability is $\frac {5}{36}$.", True),
                          (r"\frac{5}{2}", r"Each gets $2\tfrac{1}{2}$ pies.", True)]:
    add("last-number", text, gold, label)

# Multiple choice
for gold, text, label in [("B", "Comparing all options, the answer is (B).", True), ("B", "The correct option is \\boxed{B}.", True),
                          ("C", "So the answer is (B).", False), ("D", "Answer: D", True), ("A", "\\boxed{\\text{(A)}}", True),
                          ("E", "Between (A) and (E), the answer is (E).", True), ("C", "\\boxed{D}", False),
                          ("A", "The answer is A or B.", False)]:
    add("choice", text, gold, label)

# Hand-written realistic chains of thought.
HAND = [
    (r"""To find the sum of the interior angles of a hexagon, we use $(n-2) \cdot 180^\circ$.
With $n = 6$, this is $4 \cdot 180^\circ = 720^\circ$.

Therefore, the sum of the interior angles is $\boxed{720^\circ}$.""", "720", True),
    (r"""We need $P(\text{two sixes})$. Each die shows a six with probability $\frac{1}{6}$, so
$P = \frac{1}{6} \cdot \frac{1}{6} = \frac{1}{36}$.

The answer is $\boxed{\frac{1}{36}}$.""", r"\frac{1}{36}", True),
    (r"""The roots of $x^2 - 5x + 6 = 0$ factor as $(x-2)(x-3) = 0$.
So $x = 2$ or $x = 3$. The solutions are $\boxed{2, 3}$.""", "2, 3", True),
    (r"""The roots of $x^2 - 5x + 6 = 0$ factor as $(x-2)(x-3) = 0$.
So $x = 2$ or $x = 3$. The solutions are $\boxed{3, 2}$.""", r"\{2,3\}", True),
    (r"""Let the width be $w$. Then $2w + 2(2w) = 36$, so $6w = 36$ and $w = 6$.
The area is $6 \times 12 = 72$ square units.

Final answer: $\boxed{72 \text{ square units}}$""", "72", True),
    (r"""Let the width be $w$. Then $2w + 2(2w) = 36$, so $6w = 36$ and $w = 6$.
The area is $6 \times 12 = 72$ square units, so the perimeter is... wait, the question asks for the width.

Final answer: $\boxed{72}$""", "6", False),
    (r"""Compound interest: $A = 1000(1.05)^{2} = 1102.50$.
So she will have $\boxed{\$1{,}102.50}$ after two years.""", "1102.5", True),
    (r"""Distance $= \sqrt{(4-1)^2 + (6-2)^2} = \sqrt{9 + 16} = \sqrt{25} = 5$.
$\boxed{5}$""", "5", True),
    (r"""$\sqrt{50} = \sqrt{25 \cdot 2} = 5\sqrt{2}$. So the simplified form is $\boxed{5\sqrt2}$.""", r"\sqrt{50}", True),
    (r"""$\sqrt{50} = \sqrt{25 \cdot 2} = 5\sqrt{2} \approx 7.07$. So the answer is $\boxed{7.07}$.""", r"5\sqrt{2}", False),
    (r"""We solve $|2x - 1| < 3$: $-3 < 2x - 1 < 3$, so $-1 < x < 2$.
In interval notation: $\boxed{(-1, 2)}$.""", "(-1,2)", True),
    (r"""We solve $|2x - 1| \le 3$: $-3 \le 2x - 1 \le 3$, so $-1 \le x \le 2$.
In interval notation: $\boxed{(-1, 2)}$.""", "[-1,2]", False),
    (r"""The inverse of $\begin{pmatrix} 2 & 0 \\ 0 & 4 \end{pmatrix}$ is
$$\boxed{\begin{pmatrix} \frac{1}{2} & 0 \\ 0 & \frac{1}{4} \end{pmatrix}}$$""", r"\begin{pmatrix}0.5&0\\0&0.25\end{pmatrix}", True),
    (r"""Speed is distance over time: $\frac{120 \text{ km}}{1.5 \text{ h}} = 80$ km/h.
The answer is 80 km/h.""", "80", True),
    (r"""There are $\binom{6}{2} = 15$ handshakes.
#### 15""", "15", True),
    (r"""The percentage increase is $\frac{30 - 24}{24} \times 100\% = 25\%$.
So the answer is $\boxed{25\%}$.""", "25", True),
    (r"""The slope is $m = \frac{7 - 3}{4 - 2} = 2$, and the line through $(2, 3)$ is $y - 3 = 2(x - 2)$.
So the equation is $\boxed{y = 2x - 1}$.""", "y=2x-1", True),
    (r"""Let me think. $17 \times 23 = 391$. Hmm, or is it $17 \times 23 = 381$? I'll go with
$\boxed{381}$.""", "391", False),
    (r"""The GCD of 48 and 180: $180 = 3 \cdot 48 + 36$, $48 = 36 + 12$, $36 = 3 \cdot 12$. So the GCD is 12.

**Answer:** 12""", "12", True),
    (r"""Population doubles every 3 years, so after 9 years it is $500 \cdot 2^3 = 4000$.

The answer is $\boxed{4,000}$.""", "4000", True),
    (r"""The volume of the sphere is $\frac{4}{3}\pi r^3 = \frac{4}{3}\pi (3)^3 = 36\pi$.
So the volume is $\boxed{36\pi}$ cubic units.""", r"36\pi", True),
    (r"""The volume of the sphere is $\frac{4}{3}\pi r^3 = 36\pi \approx 113.1$.
So the volume is $\boxed{113.1}$ cubic units.""", r"36\pi", False),
    (r"""We have $x + y = 10$ and $x - y = 2$. Adding: $2x = 12$, $x = 6$, $y = 4$.
The solution is $\boxed{(6, 4)}$.""", "(6,4)", True),
    (r"""We have $x + y = 10$ and $x - y = 2$. Adding: $2x = 12$, $x = 6$, $y = 4$.
The solution is $\boxed{(4, 6)}$.""", "(6,4)", False),
    (r"""The number of positive divisors of $72 = 2^3 \cdot 3^2$ is $(3+1)(2+1) = 12$.
\boxed{12}""", "12", True),
    (r"""Simplify: $\frac{x^2 - 4}{x - 2} = x + 2$ for $x \ne 2$.
$\boxed{x+2}$""", "x+2", True),
    (r"""Half of the students, i.e. $\frac{1}{2} \cdot 30 = 15$, play soccer, and a third of those, 5, also play chess.
So $\boxed{5}$ students play both.""", "5", True),
    (r"""Tom has 3 times as many marbles as Jerry, who has 14. So Tom has $3 \times 14 = 42$.
Together they have $42 + 14 = 56$.
#### 56""", "56", True),
    (r"""Tom has 3 times as many marbles as Jerry, who has 14. So Tom has $3 \times 14 = 42$.
Together they have $42 + 14 = 56$.
#### 42""", "56", False),
    (r"""$\log_2 8 = 3$ because $2^3 = 8$. The answer is three.""", "3", True),
]
for text, gold, label in HAND:
    add("hand", text, gold, label)


# Held out: written after the rules were frozen and added without tuning the verifier to them
# (kind "heldout"); their first-run results are the honest figure in docs/rewards.md.
HELDOUT = [
    (r"So the probability is $\boxed{\dfrac{3}{8}}$.", "0.375", True),
    (r"So the probability is $\boxed{37.5\%}$.", r"\frac{3}{8}", True),
    (r"The remainder is $\boxed{r = 4}$.", "4", True),
    (r"Thus $a + b = \boxed{-\tfrac{7}{2}}$.", "-3.5", True),
    (r"Hence the minimum is \boxed{-\frac{7}{2}}.", "-3", False),
    (r"The area is $\boxed{25\sqrt{3}\text{ cm}^2}$.", r"25\sqrt3", True),
    (r"The answer is $\boxed{\frac{1+\sqrt{5}}{2}}$", r"\frac{\sqrt5+1}{2}", True),
    (r"The answer is $\boxed{\frac{1-\sqrt{5}}{2}}$", r"\frac{\sqrt5+1}{2}", False),
    (r"Therefore $f^{-1}(x) = \boxed{\frac{x-3}{2}}$.", r"\frac{x}{2}-\frac{3}{2}", True),
    (r"The vertex is at $\boxed{(2,-3)}$.", "(2, -3)", True),
    (r"The vertex is at $\boxed{(-3,2)}$.", "(2, -3)", False),
    (r"$\boxed{x \geq 3}$", r"x \ge 3", True),
    (r"The solution set is $\boxed{\{-2, 5\}}$.", "5, -2", True),
    (r"So there are $\boxed{1{,}000{,}000}$ ways.", "10^6", True),
    (r"The answer is $\boxed{2.0 \times 10^{3}}$ joules.", "2000", True),
    (r"She spent \$12.50, so she has $\boxed{\$7.50}$ left.", "7.5", True),
    (r"She spent \$12.50, so she has $\boxed{\$7.05}$ left.", "7.5", False),
    (r"The angle is $\boxed{\frac{\pi}{3}}$ radians.", r"60^\circ", False),
    (r"So $\log_2 32 = \boxed{5}$.", "5", True),
    (r"Final: \boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}", True),
    (r"It takes $\boxed{2\frac{1}{4}}$ hours.", "2.25", True),
    (r"It takes $\boxed{2\frac{1}{4}}$ hours.", "0.5", False),
    (r"The answer is $\boxed{\text{(C)}\ 12}$", "C", True),
    (r"the count is \boxed{ 42 }", "42", True),
    (r"So we need $n = \boxed{17}$ terms, not 18.", "17", True),
    (r"Between 3 and 4, I'd say \boxed{3}, though 4 is also possible.", "3", False),
    (r"$$\boxed{\begin{pmatrix} -1 \\ 2 \end{pmatrix}}$$", r"\begin{pmatrix}-1\\2\end{pmatrix}", True),
    (r"$$\boxed{\begin{pmatrix} 2 \\ -1 \end{pmatrix}}$$", r"\begin{pmatrix}-1\\2\end{pmatrix}", False),
    (r"The sum is \boxed{5050}.", "5,050", True),
    (r"Approximately $\boxed{0.67}$.", r"\frac{2}{3}", False),
]
for text, gold, label in HELDOUT:
    add("heldout", text, gold, label)

for item in items:
    print(json.dumps(item, ensure_ascii=False))
