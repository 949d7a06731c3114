"""kaizen.consistency: extraction, votes and pass@k against hand-computed values and a Python reference."""
import itertools
import math
import random

import pytest

from kaizen import consistency as kc


@pytest.mark.parametrize("text,expected", [
    ("so the answer is \\boxed{42}.", "42"),
    ("first \\boxed{1} then \\boxed{-\\frac{1}{3}}", "-1/3"),
    ("The answer is 7 apples, not 9", "7"),
    ("we get 3, then 5, finally 12.50", "12.5"),
    ("no digits here", None),
])
def test_extract_answer(text, expected):
    assert kc.extract_answer(text) == expected


def test_extractors_and_formats():
    assert kc.extract_boxed("x \\boxed{a+b} y") == "a+b"
    assert kc.extract_boxed("none") is None
    assert kc.extract_last_number("3 apples and 4.50 pears") == "4.5"
    assert kc.extract_last_number("ratio 3/4") == "0.75"
    assert kc.extract_choice("Between (A) and (C), the answer is (C).") == "C"
    assert kc.extract_choice("Answer: F", letters="ABCDEF") == "F"
    assert kc.extract_answer("\\boxed{5} but 6", format="last_number") == "6"
    assert kc.extract_answer("Answer: B", format="choice") == "B"
    with pytest.raises(ValueError, match="extract_answer: expected format"):
        kc.extract_answer("x", format="latex")


def test_majority_vote_hand_computed():
    v = kc.majority_vote(["1", "2", None, "2", "1", "3"])
    assert v["answer"] == "1"  # tie 2-2: the answer seen first wins
    assert (v["support"], v["runner_up"], v["total"], v["answered"], v["abstained"], v["distinct"]) == (2, 2, 5, 5, 1, 3)
    assert v["confidence"] == pytest.approx(0.4) and v["margin"] == 0.0 and v["first_index"] == 0
    assert kc.majority_vote([None, None]) is None
    with pytest.raises(ValueError, match="majority_vote: expected at least one answer"):
        kc.majority_vote([])


def test_weighted_vote():
    v = kc.weighted_vote(["a", "b", "b"], [3.0, 1.0, 1.5])
    assert v["answer"] == "a" and v["support"] == 3.0 and v["total"] == 5.5
    w = kc.weights_from_logprobs([-1.0, -2.0], temperature=0.5)
    assert w == pytest.approx([1.0, math.exp(-2.0)])
    with pytest.raises(ValueError, match="weighted_vote: expected finite non-negative weights"):
        kc.weighted_vote(["a"], [-1.0])
    with pytest.raises(ValueError, match="one weight per answer"):
        kc.weighted_vote(["a", "b"], [1.0])


def test_majority_vote_matches_python_counter():
    rng = random.Random(7)
    for _ in range(200):
        answers = [rng.choice(["x", "y", "z", None]) for _ in range(rng.randint(1, 12))]
        got = kc.majority_vote(answers)
        counted = {}
        for a in answers:
            if a is not None:
                counted.setdefault(a, 0)
                counted[a] += 1
        if not counted:
            assert got is None
            continue
        best = max(counted.values())
        first = next(a for a in answers if a is not None and counted[a] == best)
        assert got["answer"] == first and got["support"] == best


def test_pass_at_k_against_combinatorial_definition():
    for n, c, k in itertools.product(range(1, 9), range(0, 9), range(1, 9)):
        if c > n or k > n:
            continue
        expected = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert kc.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="pass_at_k: expected c <= n"):
        kc.pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="pass_at_k: expected 1 <= k <= n"):
        kc.pass_at_k(3, 1, 5)
