"""kaizen.curriculum: SEC and the bandits against hand oracles (the formulas in the C++ headers' comments),
state_dict round trips that continue bit-equal, kaizen's messages on bad input."""
import math

import pytest

from kaizen import curriculum as cur


def softmax(xs, tau=1.0):
    m = max(xs)
    e = [math.exp((x - m) / tau) for x in xs]
    return [v / sum(e) for v in e]


def test_sec_value_update_and_boltzmann_probabilities():
    sec = cur.SelfEvolvingCurriculum(3, alpha=0.5, tau=0.5, decay_unsampled=True)
    assert sec.probabilities() == pytest.approx([1 / 3] * 3)
    sec.update([0, 0, 1], [1.0, 0.0, 0.5])   # r(0) = 0.5, r(1) = 0.5, arm 2 absent (r = 0)
    assert sec.values() == pytest.approx([0.25, 0.25, 0.0])
    sec.update([2], [1.0])                    # Q = (1 - a) Q + a r: [0.125, 0.125, 0.5]
    assert sec.values() == pytest.approx([0.125, 0.125, 0.5])
    assert sec.probabilities() == pytest.approx(softmax([0.125, 0.125, 0.5], 0.5), rel=1e-12)
    paper = cur.SelfEvolvingCurriculum(3, alpha=0.5, decay_unsampled=False)
    paper.update([0], [1.0])
    paper.update([1], [1.0])
    assert paper.values() == pytest.approx([0.5, 0.5, 0.0])   # absent arms keep their value
    assert sec.add_arm() == 3 and sec.num_arms == 4


def test_sec_draw_frequencies_follow_the_softmax():
    sec = cur.SelfEvolvingCurriculum(3, alpha=1.0, tau=1.0, seed=3)
    sec.update([0, 1, 2], [0.0, 1.0, 2.0])
    draws = sec.sample(30000)
    p = softmax([0.0, 1.0, 2.0])
    for a in range(3):
        f = draws.count(a) / len(draws)
        assert abs(f - p[a]) < 5 * math.sqrt(p[a] * (1 - p[a]) / len(draws))


def test_ucb1_hand_oracle():
    ucb = cur.Ucb1(3, exploration=1.0)
    assert ucb.sample(3) == [0, 1, 2]         # undrawn arms first, ties to the lower id
    ucb.update([0, 1, 2, 2], [1.0, 0.0, 0.5, 0.5])
    # probabilities: index(a) = mean + c sqrt(ln(t + 1) / n) with t = 4: arm 0: 1 + sqrt(ln 5); arm 2:
    # 0.5 + sqrt(ln 5 / 2); arm 1: 0 + sqrt(ln 5) -> one-hot on arm 0
    assert ucb.probabilities() == [1.0, 0.0, 0.0]
    assert ucb.sample(1) == [0]


def test_discounted_ucb_discounts_before_adding():
    d = cur.DiscountedUcb(2, gamma=0.5, exploration=0.0)
    d.update([0], [1.0])           # N = [1, 0], S = [1, 0]
    d.update([1], [0.4])           # N = [0.5, 1], S = [0.5, 0.4]: means [1, 0.4]
    assert d.probabilities() == [1.0, 0.0]
    st = d.state_dict()["curriculum"]
    flat = {k: v for k, v in st.items() if isinstance(v, list)}
    assert any(v == pytest.approx([0.5, 1.0]) for v in flat.values()), st


def test_exp3_hand_oracle():
    e = cur.Exp3(2, gamma=0.2)
    assert e.probabilities() == pytest.approx([0.5, 0.5])
    e.update([0], [1.0])
    # xhat(0) = 1 / (1 * 0.5) = 2; w(0) = exp(0.2 * 2 / 2) = e^0.2, w(1) = 1
    w0 = math.exp(0.2)
    p0 = 0.8 * w0 / (w0 + 1) + 0.1
    assert e.probabilities() == pytest.approx([p0, 1 - p0], rel=1e-12)


def test_learnability_hand_oracle():
    ls = cur.LearnabilitySampler(2, rate=0.5, prior=0.5, floor=0.01)
    ls.update([0, 0], [1.0, 1.0])   # p(0) = 0.5 * 0.5 + 0.5 * 1 = 0.75, p(1) = 0.5
    s0, s1 = 0.75 * 0.25 + 0.01, 0.25 + 0.01
    assert ls.probabilities() == pytest.approx([s0 / (s0 + s1), s1 / (s0 + s1)], rel=1e-12)


def test_epsilon_greedy_hand_oracle():
    eg = cur.EpsilonGreedy(4, epsilon=0.2, decay=0.5)
    eg.update([1, 2], [1.0, 0.5])    # t = 2: epsilon_t = 0.2 / (1 + 0.5 * 2) = 0.1; best arm 1
    assert eg.probabilities() == pytest.approx([0.025, 0.925, 0.025, 0.025], rel=1e-12)


def test_thompson_symmetric_priors_and_learning():
    bt = cur.BetaThompson(2, probability_trials=4000, seed=1)
    p = bt.probabilities()
    assert p[0] + p[1] == pytest.approx(1.0) and abs(p[0] - 0.5) < 0.05
    for _ in range(20):
        bt.update([0, 1], [1.0, 0.0])
    assert bt.probabilities()[0] > 0.99
    gt = cur.GaussianThompson(2, seed=2)
    for _ in range(20):
        gt.update([0, 1], [1.0, 0.0])
    assert gt.probabilities()[0] > 0.99


def test_linucb_prefers_the_arm_whose_features_pay():
    lin = cur.LinUcb([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], alpha=0.1)
    for _ in range(10):
        lin.update([0, 1], [1.0, 0.0])
    # theta ~ (1, 0): arm 0 and arm 2 have the same mean; arm 2's larger bonus wins, arm 1 loses
    assert lin.probabilities()[1] == 0.0


ALL = [
    lambda: cur.SelfEvolvingCurriculum(4, alpha=0.3, tau=0.7, seed=5),
    lambda: cur.Ucb1(4, seed=5),
    lambda: cur.DiscountedUcb(4, gamma=0.9, seed=5),
    lambda: cur.SlidingWindowUcb(4, window=7, seed=5),
    lambda: cur.EpsilonGreedy(4, epsilon=0.3, seed=5),
    lambda: cur.Exp3(4, gamma=0.2, alpha=0.01, seed=5),
    lambda: cur.LearnabilitySampler(4, seed=5),
    lambda: cur.BetaThompson(4, probability_trials=300, seed=5),
    lambda: cur.GaussianThompson(4, probability_trials=300, seed=5),
    lambda: cur.LinUcb([[1, 0], [0, 1], [1, 1], [0.5, 0.2]], seed=5),
]


def run_steps(c, steps, offset):
    draws = []
    for s in range(steps):
        arms = c.sample(3)
        c.update(arms, [((a * 7 + s + offset) % 5) / 4 for a in arms])
        draws.append((arms, c.probabilities()))
    return draws


@pytest.mark.parametrize("make", ALL)
def test_state_dict_round_trip_continues_bit_equal(make):
    a = make()
    run_steps(a, 5, 0)
    state = a.state_dict()
    b = make()
    run_steps(b, 2, 1)   # different history, overwritten by the state
    b.load_state_dict(state)
    assert b.state_dict() == state
    assert run_steps(a, 6, 3) == run_steps(b, 6, 3)   # same draws and bit-equal probabilities


@pytest.mark.parametrize("call,message", [
    (lambda: cur.SelfEvolvingCurriculum(3, alpha=0.0), "expected alpha in (0, 1]"),
    (lambda: cur.SelfEvolvingCurriculum(0), "num_arms"),
    (lambda: cur.Ucb1(2, exploration=-1.0), "Ucb1: expected an exploration constant >= 0"),
    (lambda: cur.Ucb1(2).update([5], [1.0]), "Ucb1::update"),
    (lambda: cur.Ucb1(2).update([0, 1], [1.0]), "Ucb1::update"),
    (lambda: cur.Ucb1(2).load_state_dict(cur.Exp3(2).state_dict()), "Ucb1::restore"),
    (lambda: cur.Exp3(2).add_arm(), "fixed set of arms"),
    (lambda: cur.LinUcb([[1.0, 0.0], [1.0]]), "LinUcb: expected every feature row of 2 values"),
])
def test_bad_input_raises_kaizen_message(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)
