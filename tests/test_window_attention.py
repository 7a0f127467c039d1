"""The windowed attention and the whole selector head against the naive full-mask oracle of the spec."""
from __future__ import annotations

import math

import pytest
import torch

from tspo_eval.agent.naive_reference import (
    naive_selector_logits,
    naive_window_mask,
    naive_windowed_attention,
)
from tspo_eval.agent.positional import positional_encoding
from tspo_eval.agent.selector_head import SelectorHead
from tspo_eval.agent.window_attention import (
    window_reach,
    window_validity,
    windowed_attention,
)
from tspo_eval.testing import random_selector_state

RANDOM_T = int(torch.randint(14, 300, (1,), generator=torch.Generator().manual_seed(1234)))


def _qkv(length: int, dim: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(length, dim, generator=gen) * 3 for _ in range(3))


@pytest.mark.parametrize("length", [1, 2, 5, 6, 7, 11, 12, 13, 25, RANDOM_T])
def test_windowed_attention_matches_full_mask(length: int) -> None:
    q, k, v = _qkv(length, 768, seed=length)
    ours = windowed_attention(q, k, v, num_heads=8, window=12)
    naive = naive_windowed_attention(q, k, v, num_heads=8, window=12)
    assert ours.shape == (length, 768)
    torch.testing.assert_close(ours, naive, rtol=1e-4, atol=1e-4)  # float32 summation order only


@pytest.mark.parametrize("block", [1, 5, 32])
def test_block_size_does_not_change_the_result(block: int) -> None:
    q, k, v = _qkv(70, 96, seed=block)
    torch.testing.assert_close(
        windowed_attention(q, k, v, num_heads=8, window=12, block=block),
        naive_windowed_attention(q, k, v, num_heads=8, window=12),
        rtol=1e-4, atol=1e-4,
    )


@pytest.mark.parametrize("window", [1, 2, 3, 7, 12, 40])
@pytest.mark.parametrize("length", [1, 4, 19])
def test_other_windows_and_heads(window: int, length: int) -> None:
    q, k, v = _qkv(length, 24, seed=window * 100 + length)
    torch.testing.assert_close(
        windowed_attention(q, k, v, num_heads=3, window=window),
        naive_windowed_attention(q, k, v, num_heads=3, window=window),
        rtol=1e-5, atol=1e-5,
    )


@pytest.mark.parametrize("length, block", [(1, 32), (5, 4), (33, 32), (40, 32), (77, 16)])
def test_gradients_match_the_full_mask_and_stay_finite(length: int, block: int) -> None:
    """Training differentiates this kernel: lengths that leave padding rows in the last block
    must not leak a NaN softmax into the gradients."""
    torch.manual_seed(length)
    q, k, v = (torch.randn(length, 16, dtype=torch.float64, requires_grad=True) for _ in range(3))
    weights = torch.randn(length, 16, dtype=torch.float64)
    got = torch.autograd.grad((windowed_attention(q, k, v, 2, 12, block=block) * weights).sum(), (q, k, v))
    want = torch.autograd.grad((naive_windowed_attention(q, k, v, 2, 12) * weights).sum(), (q, k, v))
    for g, w in zip(got, want):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_window_reach_is_minus6_plus5() -> None:
    assert window_reach(12) == (6, 5)
    valid = window_validity(20, 12)
    mask = naive_window_mask(20, 12)
    for row in range(20):
        columns = [row - 6 + o for o in range(12) if valid[row, o]]
        assert columns == [c for c in range(20) if mask[row, c]]
        assert columns == list(range(max(0, row - 6), min(19, row + 5) + 1))


def test_attention_sees_exactly_its_window() -> None:
    """Changing key/value j+6 or j-7 leaves row j unchanged; j+5 and j-6 change it."""
    length, row = 30, 15
    q, k, v = _qkv(length, 16, seed=7)
    base = windowed_attention(q, k, v, num_heads=2, window=12)[row]
    for column, inside in [(row + 5, True), (row + 6, False), (row - 6, True), (row - 7, False)]:
        k2, v2 = k.clone(), v.clone()
        k2[column] += 5.0
        v2[column] += 5.0
        changed = not torch.allclose(windowed_attention(q, k2, v2, num_heads=2, window=12)[row], base)
        assert changed == inside, (column, inside)


def test_positional_code_values() -> None:
    length = 10
    code = positional_encoding(length, 768)
    assert code.shape == (10, 768) and code.dtype == torch.float32
    t = 3
    assert code[t, 0].item() == pytest.approx(math.sin(t / length), abs=1e-6)
    assert code[t, 1].item() == pytest.approx(math.cos(t / length), abs=1e-6)
    w1 = math.exp(-2 * math.log(10000) / 768)
    assert code[t, 2].item() == pytest.approx(math.sin(t / length * w1), abs=1e-6)
    assert code[t, 767].item() == pytest.approx(math.cos(t / length * math.exp(-766 * math.log(10000) / 768)), abs=1e-6)
    assert torch.equal(code[0, 0::2], torch.zeros(384)) and torch.equal(code[0, 1::2], torch.ones(384))


@pytest.fixture(scope="module")
def head_and_state() -> tuple[SelectorHead, dict[str, torch.Tensor]]:
    state = random_selector_state(seed=3, prefix="", scale=0.05)
    head = SelectorHead()
    head.load_state_dict(state)
    return head.eval(), state


@pytest.mark.parametrize("length", [1, 3, 12, 13, 64, RANDOM_T])
def test_selector_head_matches_naive_spec(head_and_state, length: int) -> None:
    head, state = head_and_state
    gen = torch.Generator().manual_seed(length)
    frames, text = torch.randn(length, 768, generator=gen), torch.randn(1, 768, generator=gen)
    with torch.no_grad():
        ours = head(frames, text)
    naive = naive_selector_logits(state, frames, text)
    assert ours.shape == (length,) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, naive, rtol=1e-4, atol=1e-4)
    assert torch.equal(torch.argsort(ours, descending=True)[:5], torch.argsort(naive, descending=True)[:5]) or length < 5


def test_selector_head_computes_in_float32_for_bf16_inputs(head_and_state) -> None:
    head, state = head_and_state
    gen = torch.Generator().manual_seed(0)
    frames, text = torch.randn(20, 768, generator=gen).bfloat16(), torch.randn(1, 768, generator=gen).bfloat16()
    with torch.no_grad():
        ours = head(frames, text)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, naive_selector_logits(state, frames.float(), text.float()), rtol=1e-4, atol=1e-4)


def test_selector_head_rejects_wrong_feature_size(head_and_state) -> None:
    head, _ = head_and_state
    with pytest.raises(ValueError, match="768"):
        head(torch.randn(4, 512), torch.randn(1, 512))


@pytest.mark.parametrize("chunk", [1, 5, 12, 64])
def test_row_chunks_with_halo_give_the_same_embedding(head_and_state, chunk: int) -> None:
    head, state = head_and_state
    gen = torch.Generator().manual_seed(chunk)
    frames, text = torch.randn(70, 768, generator=gen), torch.randn(1, 768, generator=gen)
    with torch.no_grad():
        whole = head.embed(frames, chunk=10_000)
        torch.testing.assert_close(head.embed(frames, chunk=chunk), whole, rtol=1e-5, atol=1e-5)
        logits = head.logits(head.embed(frames, chunk=chunk), frames, text)
    torch.testing.assert_close(logits, naive_selector_logits(state, frames, text), rtol=1e-4, atol=1e-4)


def test_positional_code_rows_of_a_longer_sequence() -> None:
    torch.testing.assert_close(positional_encoding(5, 768, start=7, total=20), positional_encoding(20, 768)[7:12])


def test_no_t_by_t_allocation_for_long_sequences() -> None:
    """T = 20,000 (one T x T float matrix would be 1.6 GB): no single allocation above 64 MB (linear in T)."""
    from torch.profiler import ProfilerActivity, profile

    length = 20_000
    q, k, v = _qkv(length, 16, seed=0)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = windowed_attention(q, k, v, num_heads=8, window=12)
    assert out.shape == (length, 16)
    largest = max(evt.self_cpu_memory_usage for evt in prof.events())
    assert 0 < largest < 64 * 2**20, largest
    for row in (0, 9_999, 19_999):  # spot-check rows against the oracle on a neighbourhood containing their window
        lo, hi = max(0, row - 10), min(length, row + 10)
        naive = naive_windowed_attention(q[lo:hi], k[lo:hi], v[lo:hi], 8, 12)
        torch.testing.assert_close(out[row], naive[row - lo], rtol=1e-5, atol=1e-5)
