"""kaizen.consistency: answer extraction and normalisation, majority / weighted votes, pass@k
(include/kaizen/consistency/). Answers are str or None (no answer: an abstention in the votes)."""
from . import _C

__all__ = ["extract_answer", "extract_boxed", "extract_last_number", "extract_choice", "normalize_answer",
           "majority_vote", "weighted_vote", "weights_from_logprobs", "pass_at_k"]


def extract_answer(text, format="boxed_then_number", choice_letters="ABCDE"):
    """The normalised final answer of `text`, or None. format: "boxed_then_number" (the last \\boxed{}, else the
    first number after the last "answer is"/"answer:", else the last number), "boxed", "last_number", "choice"."""
    return _C.extract_answer(text, format, choice_letters)


def extract_boxed(text):
    """The contents of the last \\boxed{...} (or \\fbox{...}), raw, or None."""
    return _C.extract_boxed(text)


def extract_last_number(text):
    """The last number in `text` (integers, decimals, fractions), canonical, or None."""
    return _C.extract_last_number(text)


def extract_choice(text, letters="ABCDE"):
    """A multiple-choice letter among `letters`, or None."""
    return _C.extract_choice(text, letters)


def normalize_answer(answer):
    """kaizen's answer normalisation (LaTeX wrappers, units, spacing, numbers to canonical form)."""
    return _C.normalize_answer(answer)


def majority_vote(answers):
    """Self-consistency vote over answers (str or None): a dict (answer, support, runner_up, total, confidence,
    margin, first_index, answered, abstained, distinct), or None when every sample abstained. Ties go to the
    answer seen first. Raises ValueError on an empty list."""
    return _C.majority_vote(list(answers))


def weighted_vote(answers, weights):
    """Vote by summed non-negative weights (same dict as majority_vote)."""
    return _C.weighted_vote(list(answers), [float(w) for w in weights])


def weights_from_logprobs(logprobs, temperature=1.0):
    """w_i = exp((lp_i − max lp) / temperature)."""
    return _C.weights_from_logprobs([float(x) for x in logprobs], float(temperature))


def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 − C(n−c, k) / C(n, k)."""
    return _C.pass_at_k(int(n), int(c), int(k))
