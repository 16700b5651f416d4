"""The optional artefact-type head of LineCNN: targets joined by detectid, its loss, its
training and evaluation, scoring with it, and models without it unchanged."""

import logging

import numpy as np
import pytest
import torch

from mlcore.cnn.artefacts import (
    MIN_EVAL_ROWS,
    NO_KIND,
    join_kind_targets,
    kind_loss,
    kind_report,
)
from mlcore.cnn.card import load_checkpoint, save_checkpoint
from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN
from mlcore.cnn.scoring import KIND_FIELD, SCORE_FIELDS, score, score_batch, score_batch_reference
from mlcore.cnn.toy import toy_candidates
from mlcore.cnn.training import normalise_rows, predict_kind_probs, train
from tests.factories_cnn import TINY, fast_config

KINDS = ("noise", "sky", "cosmic")
TINY_HEAD = CNNConfig(width=6, hidden=16, artefact_kinds=KINDS)


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    d = toy_candidates(900, seed=0)
    d["detectid"] = np.arange(900, dtype=np.int64) * 7 + 1000  # ids unlike positions
    d["kind"] = np.array([KINDS.index(t) if t in KINDS else NO_KIND for t in d["type"]])
    return d


# --- the join by detectid ----------------------------------------------------------------


def test_join_is_by_detectid_whatever_the_order_of_the_answers():
    detectid = np.array([50, 10, 40, 20, 30])
    answers = [(10, ("sky", 1.0)), (40, ("cosmic", 0.75)), (30, ("noise", 0.5))]
    a = join_kind_targets(detectid, dict(answers), KINDS)
    b = join_kind_targets(detectid, dict(answers[::-1]), KINDS)
    for kt in (a, b):
        assert kt.index.tolist() == [NO_KIND, 1, 2, NO_KIND, 0]
        assert kt.weight.tolist() == [0.0, 1.0, 0.75, 0.0, 0.5]
        assert kt.n_matched == 3 and kt.unmatched == []


def test_answers_for_candidates_not_in_the_rows_are_left_out_and_reported(caplog):
    with caplog.at_level(logging.INFO, logger="mlcore.cnn.artefacts"):
        kt = join_kind_targets(np.array([1, 2, 3]), {2: ("sky", 1.0), 99: ("cosmic", 1.0)}, KINDS)
    assert kt.index.tolist() == [NO_KIND, 1, NO_KIND]
    assert kt.unmatched == [99]
    assert "1 artefact-type answers are for candidates not in the training rows" in caplog.text


def test_join_refuses_unknown_kinds_bad_shares_and_duplicate_ids():
    with pytest.raises(ValueError, match="not one of"):
        join_kind_targets(np.array([1]), {1: ("ghost", 1.0)}, KINDS)
    with pytest.raises(ValueError, match="share"):
        join_kind_targets(np.array([1]), {1: ("sky", 0.0)}, KINDS)
    with pytest.raises(ValueError, match="unique"):
        join_kind_targets(np.array([1, 1]), {1: ("sky", 1.0)}, KINDS)


# --- the loss ------------------------------------------------------------------------------


def test_rows_without_an_answer_do_not_move_the_loss_or_its_gradient():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, NO_KIND, 2, NO_KIND, 1, NO_KIND])
    weight = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 0.0])
    loss = kind_loss(logits, target, weight)
    loss.backward()
    assert (logits.grad[target == NO_KIND] == 0).all()
    assert (logits.grad[target != NO_KIND].abs().sum(1) > 0).all()
    other = logits.detach().clone()
    other[target == NO_KIND] = 100.0  # whatever the head says on them
    assert torch.allclose(kind_loss(other, target, weight), loss.detach())
    # a batch without any answer adds nothing
    assert kind_loss(logits, torch.full((6,), NO_KIND), torch.zeros(6)).item() == 0.0


def test_unanswered_rows_do_not_change_the_heads_gradients(toy):
    """With BatchNorm frozen (eval) and no dropout, the head's gradient from a batch with
    extra unanswered rows equals the one from the answered rows alone."""
    torch.manual_seed(0)
    net = LineCNN(CNNConfig(width=6, hidden=16, dropout=0.0, artefact_kinds=KINDS)).eval()
    x = normalise_rows(toy["cutouts"], np.arange(64)).float()
    kind = torch.as_tensor(toy["kind"][:64])
    kind[::2] = NO_KIND  # half the rows have no answer
    w = (kind != NO_KIND).float()

    def head_grad(rows):
        net.zero_grad()
        _, k_logits = net.forward_with_kind(x[rows], joint=True)  # fc1 gets a gradient too
        kind_loss(k_logits, kind[rows], w[rows]).backward()
        return net.fc_kind.weight.grad.clone(), net.fc1.weight.grad.clone()

    answered = torch.nonzero(kind != NO_KIND).squeeze(1)
    g_all, g_answered = head_grad(torch.arange(64)), head_grad(answered)
    for a, b in zip(g_all, g_answered, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert g_all[0].abs().sum() > 0
    net.zero_grad()
    _, k_logits = net.forward_with_kind(x)  # the default: detached at the hidden layer
    kind_loss(k_logits, kind, w).backward()
    assert net.fc1.weight.grad is None and net.fc_kind.weight.grad.abs().sum() > 0


# --- training and evaluation --------------------------------------------------------------


def test_the_head_trains_its_loss_falls_and_it_beats_the_commonest_kind(toy):
    res = train(
        toy["cutouts"], toy["real"], toy["sn"], model_config=TINY_HEAD,
        config=fast_config(epochs=6, kind_loss_weight=1.0, kind_joint=True),
        kind_targets=toy["kind"],
    )  # fmt: skip
    # joint: on this toy the hidden layer of a real/not-real network alone holds too little
    # of the kind for a detached head (bench_artefact_head.py measures the default on the
    # simulator, where the detached head learns as much as the joint one)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.8 * losses[0]
    ev = res.kind_eval
    assert ev["measured"] and ev["n_eval"] == int((toy["kind"][res.val_idx] != NO_KIND).sum())
    assert ev["n_train_answers"] == int((toy["kind"][res.train_idx] != NO_KIND).sum())
    assert ev["accuracy"] > ev["majority_baseline"] + 0.15
    conf = np.array(ev["confusion"])
    assert conf.shape == (3, 3) and conf.sum() == ev["n_eval"]
    assert np.trace(conf) / conf.sum() == pytest.approx(ev["accuracy"], abs=1e-4)
    # the real/not-real output still learns alongside
    assert res.history[-1]["val_bacc_high"] > 0.8


def test_too_few_held_out_answers_are_not_measured(toy):
    kind = toy["kind"].copy()
    answered = np.flatnonzero(kind != NO_KIND)
    kind[answered[40:]] = NO_KIND  # 40 answers in all: a handful land in validation
    res = train(
        toy["cutouts"], toy["real"], toy["sn"], model_config=TINY_HEAD,
        config=fast_config(epochs=1),
        kind_targets=kind,
    )  # fmt: skip
    n_val = int((kind[res.val_idx] != NO_KIND).sum())
    assert n_val < MIN_EVAL_ROWS
    assert res.kind_eval["measured"] is False and res.kind_eval["accuracy"] is None
    assert res.kind_eval["n_eval"] == n_val and "not measured" in res.kind_eval["note"]


def test_kind_report_counts_only_rows_with_an_answer():
    probs = np.eye(3)[[0, 1, 2, 2] * 6]
    index = np.array([0, 1, 1, NO_KIND] * 6)
    rep = kind_report(probs, index, KINDS)
    assert rep["n_eval"] == 18 < MIN_EVAL_ROWS and not rep["measured"]
    rep = kind_report(probs, index, KINDS, min_rows=10)
    assert rep["accuracy"] == pytest.approx(12 / 18, abs=1e-4)
    assert rep["confusion"] == [[6, 0, 0], [0, 6, 6], [0, 0, 0]]


def test_kind_targets_and_the_head_go_together(toy):
    args = (toy["cutouts"], toy["real"], toy["sn"])
    with pytest.raises(ValueError, match="artefact_kinds"):
        train(*args, model_config=TINY, config=fast_config(epochs=1), kind_targets=toy["kind"])
    with pytest.raises(ValueError, match="needs kind_targets"):
        train(*args, model_config=TINY_HEAD, config=fast_config(epochs=1))
    with pytest.raises(ValueError, match="aligned"):
        train(
            *args,
            model_config=TINY_HEAD,
            config=fast_config(epochs=1),
            kind_targets=toy["kind"][:9],
        )
    with pytest.raises(ValueError, match="-1"):
        train(*args, model_config=TINY_HEAD, config=fast_config(epochs=1),
              kind_targets=np.full(900, 3))  # fmt: skip


def test_ensembles_judge_their_averaged_head(toy):
    res = train(
        toy["cutouts"], toy["real"], toy["sn"], model_config=TINY_HEAD,
        config=fast_config(epochs=1, members=2, member_tolerance=1.0), kind_targets=toy["kind"],
    )  # fmt: skip
    assert isinstance(res.model, EnsembleCNN) and res.model.has_kind_head
    probs = predict_kind_probs(res.model, normalise_rows(toy["cutouts"], res.val_idx))
    want = kind_report(probs, toy["kind"][res.val_idx], KINDS)
    assert res.kind_eval["accuracy"] == want["accuracy"]
    assert res.kind_eval["confusion"] == want["confusion"]


def test_fine_tuning_may_add_the_head(toy):
    base = train(
        toy["cutouts"], toy["real"], toy["sn"], model_config=TINY, config=fast_config(epochs=1)
    )
    res = train(
        toy["cutouts"], toy["real"], toy["sn"], model_config=TINY_HEAD,
        config=fast_config(epochs=1),
        kind_targets=toy["kind"], init=base.model,
    )  # fmt: skip
    assert res.model.has_kind_head


# --- models without the head, old checkpoints, scoring -------------------------------------


def test_a_model_without_the_head_is_the_one_output_network():
    torch.manual_seed(0)
    plain = LineCNN(TINY)
    torch.manual_seed(0)
    headed = LineCNN(TINY_HEAD)
    assert plain.fc_kind is None and not plain.has_kind_head
    assert not any(k.startswith("fc_kind") for k in plain.state_dict())
    # the head is made last: same seed, same trunk and real/not-real head
    for k, v in plain.state_dict().items():
        assert torch.equal(v, headed.state_dict()[k])
    assert "artefact_kinds" in TINY.to_dict() and TINY.to_dict()["artefact_kinds"] == ()


def test_a_checkpoint_saved_before_the_head_loads_and_scores_identically(tmp_path, toy):
    torch.manual_seed(3)
    model = LineCNN(TINY).eval()
    model.temperature.fill_(1.3)
    # the checkpoint as code before the head wrote it: no artefact_kinds in the config
    config = {k: v for k, v in TINY.to_dict().items() if k != "artefact_kinds"}
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"config": config, "state_dict": state}, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path)
    assert loaded.config.artefact_kinds == () and not loaded.has_kind_head
    raw = toy["cutouts"][:100]
    kw = dict(n_samples=5, seed=4, batch_size=64)
    a, b = score(model, raw, **kw), score(loaded, raw, **kw)
    assert set(b) == set(SCORE_FIELDS)
    for k in SCORE_FIELDS:
        np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(ValueError, match="no artefact-type head"):
        score(loaded, raw, kinds=True)


def test_a_headed_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    model = LineCNN(TINY_HEAD).eval()
    save_checkpoint(tmp_path / "model.pt", model)
    loaded = load_checkpoint(tmp_path)
    assert loaded.config.artefact_kinds == KINDS
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_scoring_returns_kind_probabilities_only_when_asked(toy):
    torch.manual_seed(1)
    model = LineCNN(TINY_HEAD).eval()
    raw = toy["cutouts"][:40]
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    plain = score_batch(model, raw, n_samples=4, generator=gen())
    assert set(plain) == set(SCORE_FIELDS)
    fast = score_batch(model, raw, n_samples=4, generator=gen(), kinds=True)
    ref = score_batch_reference(model, raw, n_samples=4, generator=gen(), kinds=True)
    for k in SCORE_FIELDS:  # asking for kinds changes nothing else
        np.testing.assert_array_equal(plain[k], fast[k])
        np.testing.assert_allclose(ref[k], fast[k], atol=1e-4)
    assert fast[KIND_FIELD].shape == (40, 3)
    np.testing.assert_allclose(fast[KIND_FIELD].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ref[KIND_FIELD], fast[KIND_FIELD], atol=1e-4)
    want = predict_kind_probs(model, normalise_rows(raw, np.arange(40)))
    np.testing.assert_allclose(fast[KIND_FIELD], want, atol=1e-4)
    whole = score(model, raw, n_samples=4, batch_size=16, kinds=True)
    assert whole[KIND_FIELD].shape == (40, 3)
    np.testing.assert_allclose(whole[KIND_FIELD], want, atol=1e-4)


def test_the_detached_head_leaves_the_real_or_not_network_as_without_it(toy):
    """Default (kind_joint False): the head's loss stops at the hidden layer, so every
    shared weight ends as in a training without the head; joint training moves them."""
    args = (toy["cutouts"], toy["real"], toy["sn"])
    plain = train(*args, model_config=TINY, config=fast_config(epochs=2)).model.state_dict()
    headed = train(
        *args, model_config=TINY_HEAD, config=fast_config(epochs=2), kind_targets=toy["kind"]
    ).model.state_dict()
    joint = train(
        *args, model_config=TINY_HEAD, config=fast_config(epochs=2, kind_joint=True),
        kind_targets=toy["kind"],
    ).model.state_dict()  # fmt: skip
    shared = [k for k in plain if not k.startswith("fc_kind.")]
    assert set(shared) == {k for k in headed if not k.startswith("fc_kind.")}
    assert all(torch.equal(plain[k], headed[k]) for k in shared)
    assert not all(torch.equal(plain[k], joint[k]) for k in shared)
