#!/usr/bin/env python3
"""Writes heldout.jsonl: 64 realistic model outputs with gold answers and hand labels, written on
2026-12-03 after the verifier's rules were frozen (after the fixes for the first held-out 30) and
before any rule was changed for them. Styles: GSM8K-like, MATH-like boxed, multiple choice, units,
intervals, hedges, truncations, think blocks, answer tags. Their first-run results are reported in
docs/rewards.md ("Held-out"); later rule changes do not make that figure a held-out one again.

usage: make_heldout.py > heldout.jsonl"""
import json

ITEMS = [
    # --- GSM8K-like
    ("gsm8k", "Natalia sold 48 clips in April and half as many in May, so 48 / 2 = 24 in May.\nIn total she sold 48 + 24 = 72 clips.\n#### 72", "72", True, "stop"),
    ("gsm8k", "Weng earns $12 an hour. 50 minutes is 50/60 of an hour, so she earned 12 * 50/60 = $10.\n#### 10", "10", True, "stop"),
    ("gsm8k", "Betty has 100 / 2 = 50 dollars. Her parents give 15 and her grandparents 15 * 2 = 30.\nShe still needs 100 - 50 - 15 - 30 = 5 dollars.\n#### 5", "5", True, "stop"),
    ("gsm8k", "James writes 3 pages to 2 friends twice a week: 3 * 2 * 2 = 12 pages a week.\nIn a year that is 12 * 52 = 624 pages.\n#### 624", "624", True, "stop"),
    ("gsm8k", "James writes 3 pages to 2 friends twice a week: 3 * 2 * 2 = 12 pages a week.\nIn a year that is 12 * 52 = 624 pages.\n#### 642", "624", False, "stop"),
    ("gsm8k", "The store sells 3 boxes at $4.50 each, which is 3 * 4.50 = $13.50. With the $2 coupon he pays $11.50.\nThe answer is $11.50.", "11.5", True, "stop"),
    ("gsm8k", "The store sells 3 boxes at $4.50 each, which is 3 * 4.50 = $13.50. With the $2 coupon he pays $11.50.\nThe answer is $13.50.", "11.5", False, "stop"),
    ("gsm8k", "Each bag holds 1,250 grams, and there are 4 bags, so the total is 5,000 grams.\nTherefore, the total weight is 5000 grams.", "5000", True, "stop"),
    ("gsm8k", "Each bag holds 1,250 grams, and there are 4 bags, so the total is 5,000 grams. Converting to kilograms, that", "5000", False, "length"),
    ("gsm8k", "She reads 20 pages a day for 7 days, 20 * 7 = 140 pages, and the book has 300 pages, so 300 - 140 = 160 pages are left.", "160", True, "stop"),
    ("gsm8k", "There are 24 students; 3/8 of them walk, which is 9 students. The rest, 24 - 9 = 15, take the bus.\nSo 15 students take the bus. Wait, the question asks how many walk, so the answer is 9.", "9", True, "stop"),
    ("gsm8k", "The train covers 180 km in 2.5 hours, so its speed is 180 / 2.5 = 72 km/h.\n**Final answer:** 72 km/h", "72", True, "stop"),
    # --- MATH-like boxed
    ("math", r"Completing the square, $x^2 - 6x + 13 = (x-3)^2 + 4$, so the minimum value is $\boxed{4}$.", "4", True, "stop"),
    ("math", r"By Vieta, the sum of the roots is $-\frac{b}{a} = \frac{7}{2}$. Thus the answer is $\boxed{\frac72}$.", "3.5", True, "stop"),
    ("math", r"The distance is $\sqrt{(4-1)^2 + (6-2)^2} = \sqrt{25} = \boxed{5}$.", "5", True, "stop"),
    ("math", r"Simplifying, $\sqrt{50} + \sqrt{8} = 5\sqrt2 + 2\sqrt2 = \boxed{7\sqrt{2}}$.", r"\sqrt{98}", True, "stop"),
    ("math", r"Simplifying, $\sqrt{50} + \sqrt{8} = 5\sqrt2 + 2\sqrt2 = \boxed{7\sqrt{2}}$.", r"\sqrt{58}", False, "stop"),
    ("math", r"So $\cos 60^\circ = \boxed{\dfrac{1}{2}}$.", r"\frac{1}{2}", True, "stop"),
    ("math", r"There are $\binom{8}{3} = \boxed{56}$ committees.", "56", True, "stop"),
    ("math", r"There are $\binom{8}{3} = \boxed{336}$ committees.", "56", False, "stop"),
    ("math", r"The slope is $\frac{5-1}{3-1} = 2$, so the line is $\boxed{y = 2x - 1}$.", "y=2x-1", True, "stop"),
    ("math", r"The slope is $\frac{5-1}{3-1} = 2$, so the line is $\boxed{y = 2x + 1}$.", "y=2x-1", False, "stop"),
    ("math", r"Expanding, we get $\boxed{x^2+5x+6}$.", "(x+2)(x+3)", True, "stop"),
    ("math", r"Expanding, we get $\boxed{x^2+5x+5}$.", "(x+2)(x+3)", False, "stop"),
    ("math", r"The roots are $x = \boxed{2, -\frac{1}{3}}$.", r"-\frac13, 2", True, "stop"),
    ("math", r"Thus $z = \boxed{3 - 4i}$.", "3-4i", True, "stop"),
    ("math", r"Thus $z = \boxed{3 + 4i}$.", "3-4i", False, "stop"),
    ("math", r"The probability is $\boxed{\frac{5}{36}}$.", r"\frac{10}{72}", True, "stop"),
    ("math", r"So the base-10 value is $\boxed{2^{8}-1}$.", "255", True, "stop"),
    ("math", r"The final answer is $\boxed{\pi/4}$. I hope it is correct.", r"\frac{\pi}{4}", True, "stop"),
    ("math", r"Thus the matrix is $\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}}$.", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", True, "stop"),
    ("math", r"Thus the matrix is $\boxed{\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}}$.", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", False, "stop"),
    # --- multiple choice
    ("choice", r"Checking each option, only (D) satisfies both conditions. The answer is (D).", "D", True, "stop"),
    ("choice", r"Checking each option, only (D) satisfies both conditions. The answer is (B).", "D", False, "stop"),
    ("choice", r"$\textbf{(C) } 24$ is the only value that works, so the answer is $\boxed{\textbf{(C)}}$.", "C", True, "stop"),
    ("choice", "Answer: B", "B", True, "stop"),
    ("choice", "The correct choice is A or C, depending on the interpretation.", "A", False, "stop"),
    # --- units, money, percent
    ("units", r"The perimeter is $2(8 + 5) = \boxed{26 \text{ cm}}$.", "26", True, "stop"),
    ("units", r"The speed is $\boxed{15\ \text{m/s}}$.", "15", True, "stop"),
    ("units", r"The angle measures $\boxed{120^\circ}$.", "120", True, "stop"),
    ("units", r"The interest is $\boxed{\$1{,}250}$.", "1250", True, "stop"),
    ("units", r"The discount is $\boxed{15\%}$.", "15", True, "stop"),
    ("units", r"The discount is $\boxed{0.15}$.", r"15\%", True, "stop"),
    ("units", r"The discount is $\boxed{1.5\%}$.", r"15\%", False, "stop"),
    ("units", r"The volume is $\boxed{36\pi \text{ cubic units}}$.", r"36\pi", True, "stop"),
    # --- intervals and inequalities
    ("interval", r"The solution set is $\boxed{(-\infty, 3]}$.", r"(-\infty,3]", True, "stop"),
    ("interval", r"The solution set is $\boxed{(-\infty, 3)}$.", r"(-\infty,3]", False, "stop"),
    ("interval", r"So $x \in \boxed{[-2, 5)}$.", "[-2,5)", True, "stop"),
    ("interval", r"The domain is $\boxed{(-\infty,1)\cup(1,\infty)}$.", r"(-\infty, 1) \cup (1, \infty)", True, "stop"),
    ("interval", r"Hence $\boxed{x > 2}$.", "x>2", True, "stop"),
    ("interval", r"Hence $\boxed{x \ge 2}$.", "x>2", False, "stop"),
    # --- hedges and several answers
    ("hedge", r"So $x = \boxed{4}$, or possibly $x = 5$ if we include the endpoint.", "4", False, "stop"),
    ("hedge", r"I think the answer is 12, but it could also be 14.", "12", False, "stop"),
    ("hedge", r"The answer is $\boxed{6}$ or $\boxed{7}$.", "6", False, "stop"),
    ("hedge", r"We first guessed $\boxed{8}$, but rechecking the count gives $\boxed{9}$.", "9", False, "stop"),
    ("hedge", r"The answer is either 5 or 6.", "5", False, "stop"),
    ("hedge", r"Counting again carefully, the number of paths is $\boxed{35}$, and this matches the formula $\binom{7}{3} = 35$.", "35", True, "stop"),
    # --- truncations
    ("truncated", r"We have $a_1 = 2$ and $a_{n+1} = 2a_n + 1$, so $a_2 = 5$, $a_3 = 11$, and continuing the pattern we find that $a_{10} = $", "1535", False, "length"),
    ("truncated", r"So far the sum is $\boxed{12", "12", False, "stop"),
    ("truncated", r"<think>Let me compute 7 * 8 = 56, then subtract 6 to get 50. So the answer", "50", False, "length"),
    ("truncated", "The total so far is 45, and adding the next term we get", "45", False, "stop"),
    # --- think blocks and tags
    ("think", "<think>\n7 * 8 = 56, 56 - 6 = 50.\n</think>\nThe answer is \\boxed{50}.", "50", True, "stop"),
    ("think", "<think>\nMaybe 48? No: 7 * 8 = 56, minus 6 is 50.\n</think>\n<answer>50</answer>", "50", True, "stop"),
    ("think", "<think>\nI get 50.\n</think>\n<answer>48</answer>", "50", False, "stop"),
]

for i, (kind, text, gold, label, finish) in enumerate(ITEMS):
    print(json.dumps({"id": i, "kind": kind, "text": text, "gold": gold, "label": label, "finish": finish}, ensure_ascii=False))
