"""The training math (tspo_eval.training.policy/rewards/advantages/schedules) against hand computations."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from tspo_eval.training.advantages import (
    ANCHOR_LAMBDA,
    downscale_reward,
    group_advantages,
    mixed_advantages,
    shape_rewards,
)
from tspo_eval.training.policy import (
    first_draw_terms,
    gumbel_top_k,
    logprob_terms,
    plackett_luce_terms,
    policy_loss,
    set_logprob,
    trainable_scores,
)
from tspo_eval.training.rewards import answer_reward, span_reward, total_reward
from tspo_eval.training.schedules import LinearDecay, lr_factor, tau_at


def _pl_probability(p: list[float], ordered: tuple[int, ...]) -> float:
    """Probability of drawing ``ordered`` in that order without replacement from ``p`` (by hand)."""
    prob, left = 1.0, 1.0
    for i in ordered:
        prob *= p[i] / left
        left -= p[i]
    return prob


@pytest.mark.parametrize("k", [1, 2, 3])
def test_gumbel_top_k_inclusion_matches_exact_plackett_luce_marginals(k: int) -> None:
    logits = torch.tensor([1.5, -0.3, 0.7, 0.0, -1.2])
    p = torch.softmax(logits.double(), 0).tolist()
    exact = [0.0] * 5
    for ordered in itertools.permutations(range(5), k):
        prob = _pl_probability(p, ordered)
        for i in ordered:
            exact[i] += prob
    assert sum(exact) == pytest.approx(k)
    n = 200_000
    sets = gumbel_top_k(logits, k, n, torch.Generator().manual_seed(7))
    freq = torch.bincount(sets.positions.reshape(-1), minlength=5).double() / n
    assert torch.allclose(freq, torch.tensor(exact, dtype=torch.float64), atol=0.006), (freq, exact)


def test_gumbel_top_k_order_and_first_draw_distribution() -> None:
    logits = torch.tensor([0.2, 1.0, -0.5, 0.4])
    sets = gumbel_top_k(logits, 3, 100_000, torch.Generator().manual_seed(1))
    assert torch.all(sets.positions[:, 1:] > sets.positions[:, :-1])  # temporal order, distinct
    assert torch.equal(torch.sort(sets.draw_order, 1).values, sets.positions)
    first = torch.bincount(sets.draw_order[:, 0], minlength=4).double() / 100_000
    assert torch.allclose(first, torch.softmax(logits.double(), 0), atol=0.006)
    again = gumbel_top_k(logits, 3, 100_000, torch.Generator().manual_seed(1))
    assert torch.equal(again.draw_order, sets.draw_order)  # the generator alone decides


def test_first_draw_logprob_by_hand() -> None:
    z = torch.tensor([2.0, 0.0, 1.0, -1.0])
    order = torch.tensor([[2, 0], [3, 1]])
    log_p = [zi - math.log(sum(math.exp(v) for v in z.tolist())) for zi in z.tolist()]
    terms = first_draw_terms(z, order)
    assert terms.reshape(-1).tolist() == pytest.approx([log_p[2], log_p[0], log_p[3], log_p[1]], rel=1e-6)
    assert set_logprob(z, order, "first-draw").tolist() == pytest.approx(
        [(log_p[2] + log_p[0]) / 2, (log_p[3] + log_p[1]) / 2], rel=1e-6)


def test_plackett_luce_logprob_by_hand_and_normalised() -> None:
    z = torch.tensor([2.0, 0.0, 1.0, -1.0])
    p = torch.softmax(z.double(), 0).tolist()
    order = torch.tensor([[2, 0, 3]])
    terms = plackett_luce_terms(z, order)
    e = [math.exp(v) for v in z.tolist()]
    hand = [math.log(e[2] / sum(e)), math.log(e[0] / (e[0] + e[1] + e[3])), math.log(e[3] / (e[1] + e[3]))]
    assert terms[0].tolist() == pytest.approx(hand, rel=1e-5)
    assert float(set_logprob(z, order, "plackett-luce")) == pytest.approx(math.log(_pl_probability(p, (2, 0, 3))), rel=1e-5)
    every = torch.tensor(list(itertools.permutations(range(4), 2)))
    total = torch.exp(logprob_terms(z, every, "plackett-luce").double().sum(1)).sum()
    assert float(total) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        logprob_terms(z, order, "bogus")


def test_advantages_by_hand() -> None:
    adv = group_advantages(torch.tensor([1.0, 2.0, 2.0, 1.0]))
    std = math.sqrt(1 / 3)  # unbiased std of 1,2,2,1
    assert adv.tolist() == pytest.approx([-0.5 / (std + 1e-4), 0.5 / (std + 1e-4)] * 1 + [0.5 / (std + 1e-4), -0.5 / (std + 1e-4)])
    assert torch.equal(group_advantages(torch.ones(5)), torch.zeros(5, dtype=torch.float64))
    assert torch.equal(group_advantages(torch.tensor([3.0])), torch.zeros(1, dtype=torch.float64))


def test_equal_rewards_give_zero_gradient() -> None:
    z = torch.randn(12, requires_grad=True)
    sets = gumbel_top_k(z, 4, 6, torch.Generator().manual_seed(0))
    for kind in ("first-draw", "plackett-luce"):
        loss = policy_loss(logprob_terms(z, sets.draw_order, kind), group_advantages(torch.full((6,), 1.5)))
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.count_nonzero(grad) == 0


def test_policy_loss_gradient_by_hand() -> None:
    z = torch.tensor([0.5, -0.2, 1.0, 0.3, -1.0], requires_grad=True)
    order = torch.tensor([[0, 2], [3, 1], [4, 2]])
    adv = torch.tensor([1.0, -0.5, 0.25])
    loss = policy_loss(first_draw_terms(z, order), adv)
    assert float(loss.detach()) == pytest.approx(-float(adv.mean()))  # ratio is 1 in value
    (grad,) = torch.autograd.grad(loss, z)
    p = torch.softmax(z.detach(), 0)
    hand = torch.zeros(5)
    for g in range(3):
        for i in order[g].tolist():  # d log_softmax(z)_i / dz = onehot(i) - p
            hand += -(adv[g] / 3) * (torch.nn.functional.one_hot(torch.tensor(i), 5) - p) / 2
    assert torch.allclose(grad, hand, atol=1e-6)


@pytest.mark.parametrize("length", [1, 5, 30, 40, 77])
def test_trainable_scores_match_inference_head(tiny_agent, length: int) -> None:
    feats = torch.randn(length, 768)
    text = torch.randn(1, 768)
    head = tiny_agent.head
    s = trainable_scores(head, feats, text)
    assert torch.allclose(s, head(feats, text) * head.tau, atol=1e-5)
    weight = head.mlp[0].weight
    assert not weight.requires_grad  # the loaded agent is frozen; training flips it on a copy
    import copy

    trainable = copy.deepcopy(head).requires_grad_(True)
    trainable_scores(trainable, feats, text).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in trainable.parameters() if p.grad is not None)
    assert trainable.mlp[0].weight.grad is not None
    if length > 1:  # one candidate: the softmax over its window has nothing to compare
        assert trainable.temporal.Self_q.weight.grad.abs().sum() > 0
    assert trainable.temporal.ffn_o.weight.grad is None  # unused in the forward pass


def test_rewards() -> None:
    assert answer_reward("The best answer is B.", "B", 4) == 1.0
    assert answer_reward("C", "B", 4) == 0.0
    assert answer_reward("I cannot tell.", "B", 4) == 0.0
    assert span_reward([0.5, 1.0, 3.0, 9.0], [(1.0, 3.0)]) == 0.5  # bounds included
    assert span_reward([0.5, 7.0], [(0.0, 1.0), (6.5, 7.5)]) == 1.0
    assert span_reward([1.0], []) == 0.0
    assert total_reward(1.0, 0.25, "specific") == 1.25
    assert total_reward(0.0, 0.25, "general") == 1.0
    with pytest.raises(ValueError):
        total_reward(1.0, 0.0, "other")


def test_shaping_values_and_continuity() -> None:
    tau = 0.8
    r = torch.tensor([0.0, 0.5, tau, 1.0, 2.0], dtype=torch.float64)
    shaped = shape_rewards(r)
    hand = [
        tau - (math.exp(tau) - 1) / (math.e - 1),
        tau - (math.exp(tau - 0.5) - 1) / (math.e - 1),
        tau,
        tau + 0.01 * math.log(1.2),
        tau + 0.01 * math.log(2.2),
    ]
    assert shaped.tolist() == pytest.approx(hand, rel=1e-12)
    eps = 1e-9
    near = shape_rewards(torch.tensor([tau - eps, tau + eps], dtype=torch.float64))
    assert abs(float(near[0]) - tau) < 1e-8 and abs(float(near[1]) - tau) < 1e-8
    assert torch.all(shaped[1:] > shaped[:-1])  # monotone


def test_off_policy_modes_by_hand() -> None:
    on = torch.tensor([0.0, 1.0, 1.0, 0.0])
    std = math.sqrt(1 / 3)
    a = 0.5 / (std + 1e-4)
    assert mixed_advantages(on, None, "none").tolist() == pytest.approx([-a, a, a, -a])
    anchored = mixed_advantages(on, 2.0, "anchor")
    assert anchored.tolist() == pytest.approx([-a, a, a, -a, ANCHOR_LAMBDA * a])
    assert downscale_reward(2.0) == pytest.approx(1.6) and downscale_reward(1.0) == 1.0
    down = mixed_advantages(on, 2.0, "downscale")
    assert down.tolist() == pytest.approx(group_advantages(torch.tensor([0.0, 1.0, 1.0, 0.0, 1.6])).tolist())
    shaped = mixed_advantages(on, 2.0, "shaping")
    assert shaped.tolist() == pytest.approx(group_advantages(shape_rewards(torch.tensor([0.0, 1.0, 1.0, 0.0, 2.0]))).tolist())
    # a group whose on-policy sets all missed: only the oracle can move the policy (shaping/downscale)
    zero = torch.zeros(4)
    assert mixed_advantages(zero, 2.0, "shaping")[-1] > 0 and mixed_advantages(zero, 2.0, "downscale")[-1] > 0
    assert torch.all(mixed_advantages(zero, 2.0, "shaping")[:-1] < 0)
    with pytest.raises(ValueError):
        mixed_advantages(on, 1.0, "none")


def test_schedules() -> None:
    assert tau_at(0, 10, 0.025) == 0.025
    assert tau_at(5, 10, 0.025) == pytest.approx(0.0175)
    assert tau_at(10, 10, 0.1) == pytest.approx(0.01)
    assert [lr_factor(s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=5e-4, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, LinearDecay(4))
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([5e-4, 3.75e-4, 2.5e-4, 1.25e-4])
