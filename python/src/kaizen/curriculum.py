"""kaizen.curriculum: SEC and the bandits of include/kaizen/curriculum/ (kaizen::Curriculum models) for Python.

Every curriculum samples arm ids (problem categories) and learns from the gains its draws earned:

    cur = kaizen.curriculum.SelfEvolvingCurriculum(num_arms=4, alpha=0.5, tau=1.0, seed=0)
    arms = cur.sample(8)                  # list of ints
    cur.update(arms, gains)               # gains: e.g. mean |advantage| per rollout (SEC)
    probs = cur.probabilities()           # distribution of the next single draw
    state = cur.state_dict()              # {"curriculum": the C++ state() as a dict, "rng": engine state}
    cur2 = kaizen.curriculum.SelfEvolvingCurriculum(num_arms=4); cur2.load_state_dict(state)  # continues bit-equal

Each object owns its random engine (kaizen::Rng = mt19937_64, seeded by `seed`), so the same seed and the
same updates give the C++ library's draws. Bad input raises ValueError with kaizen's message. The formulas
(and their references) are in the C++ headers named in each class's docstring.
"""
import json

from . import _curriculum

__all__ = ["SelfEvolvingCurriculum", "Ucb1", "DiscountedUcb", "SlidingWindowUcb", "EpsilonGreedy", "Exp3",
           "LearnabilitySampler", "BetaThompson", "GaussianThompson", "LinUcb"]

_SQRT2 = 1.4142135623730951


class _Curriculum:
    """Common methods; subclasses build the C++ object."""

    _impl = None

    def sample(self, n):
        """n arm ids (list of int) drawn from the current state."""
        return self._impl.sample(int(n))

    def update(self, arms, gains):
        """One step: gains[i] (finite) was earned by arms[i]."""
        self._impl.update([int(a) for a in arms], [float(g) for g in gains])

    def probabilities(self):
        """The distribution of the next single draw (list of float, one per arm)."""
        return self._impl.probabilities()

    @property
    def num_arms(self):
        return self._impl.num_arms

    def add_arm(self):
        """Appends a new arm (never drawn) and returns its id (not every curriculum supports it)."""
        if not hasattr(self._impl, "add_arm"):
            raise ValueError(f"{type(self).__name__}.add_arm: this curriculum has a fixed set of arms")
        return self._impl.add_arm()

    def state_dict(self):
        """Everything needed to continue exactly: the C++ state() (a dict) and the engine's state."""
        return {"curriculum": json.loads(self._impl.state_json()), "rng": self._impl.rng_state()}

    def load_state_dict(self, state):
        """Restores a state_dict() (of the same kind of curriculum); options and arm count follow the state."""
        if not isinstance(state, dict) or "curriculum" not in state or "rng" not in state:
            raise ValueError("load_state_dict: expected a dict with \"curriculum\" and \"rng\" (from state_dict())")
        self._impl.restore_json(json.dumps(state["curriculum"]))
        self._impl.set_rng_state(str(state["rng"]))


class SelfEvolvingCurriculum(_Curriculum):
    """SEC (curriculum/sec.hpp): Q(c) <- (1 - alpha) Q(c) + alpha * mean gain of c this step (absent arms decay
    toward 0 when decay_unsampled); draws from softmax(Q / tau)."""

    def __init__(self, num_arms, alpha=0.5, tau=1.0, decay_unsampled=True, seed=0):
        self._impl = _curriculum.SelfEvolvingCurriculum(int(num_arms), float(alpha), float(tau),
                                                         bool(decay_unsampled), int(seed))

    def values(self):
        return self._impl.values()


class Ucb1(_Curriculum):
    """UCB1 (curriculum/ucb1.hpp): index = mean + c * sqrt(ln t / n); undrawn arms first; deterministic."""

    def __init__(self, num_arms, exploration=_SQRT2, seed=0):
        self._impl = _curriculum.Ucb1(int(num_arms), float(exploration), int(seed))


class DiscountedUcb(_Curriculum):
    """Discounted UCB (curriculum/discounted_ucb.hpp) for drifting gains: statistics decay by gamma per step."""

    def __init__(self, num_arms, gamma=0.99, exploration=_SQRT2, seed=0):
        self._impl = _curriculum.DiscountedUcb(int(num_arms), float(gamma), float(exploration), int(seed))


class SlidingWindowUcb(_Curriculum):
    """Sliding-window UCB (curriculum/sliding_window_ucb.hpp): statistics over the last `window` gains."""

    def __init__(self, num_arms, window=1000, exploration=_SQRT2, seed=0):
        self._impl = _curriculum.SlidingWindowUcb(int(num_arms), int(window), float(exploration), int(seed))


class EpsilonGreedy(_Curriculum):
    """epsilon-greedy (curriculum/epsilon_greedy.hpp): the best mean with prob. 1 - epsilon, else uniform."""

    def __init__(self, num_arms, epsilon=0.1, decay=0.0, seed=0):
        self._impl = _curriculum.EpsilonGreedy(int(num_arms), float(epsilon), float(decay), int(seed))


class Exp3(_Curriculum):
    """EXP3 (curriculum/exp3.hpp): adversarial bandit, exponential weights mixed with gamma-uniform exploration."""

    def __init__(self, num_arms, gamma=0.1, alpha=0.0, seed=0):
        self._impl = _curriculum.Exp3(int(num_arms), float(gamma), float(alpha), int(seed))


class LearnabilitySampler(_Curriculum):
    """Learnability sampling (curriculum/learnability.hpp): p(1 - p) of each arm's tracked success rate."""

    def __init__(self, num_arms, rate=0.1, prior=0.5, floor=0.01, seed=0):
        self._impl = _curriculum.LearnabilitySampler(int(num_arms), float(rate), float(prior), float(floor), int(seed))


class BetaThompson(_Curriculum):
    """Beta-Bernoulli Thompson sampling (curriculum/thompson.hpp) for gains in [0, 1]."""

    def __init__(self, num_arms, prior_alpha=1.0, prior_beta=1.0, probability_trials=2000, seed=0):
        self._impl = _curriculum.BetaThompson(int(num_arms), float(prior_alpha), float(prior_beta),
                                              int(probability_trials), int(seed))


class GaussianThompson(_Curriculum):
    """Gaussian Thompson sampling (curriculum/thompson.hpp): normal prior, known noise variance."""

    def __init__(self, num_arms, prior_mean=0.0, prior_variance=1.0, noise_variance=0.25, probability_trials=2000,
                 seed=0):
        self._impl = _curriculum.GaussianThompson(int(num_arms), float(prior_mean), float(prior_variance),
                                                  float(noise_variance), int(probability_trials), int(seed))


class LinUcb(_Curriculum):
    """LinUCB (curriculum/linucb.hpp) over arms given by feature rows [K, d] (a list of lists or a tensor)."""

    def __init__(self, features, alpha=1.0, lambda_=1.0, seed=0):
        rows = features.tolist() if hasattr(features, "tolist") else features
        self._impl = _curriculum.LinUcb([[float(x) for x in r] for r in rows], float(alpha), float(lambda_),
                                        int(seed))
