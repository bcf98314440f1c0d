"""The words the pages use for a probe-free score's measured worth (backend/scores.py)."""

from __future__ import annotations

from backend.scores import ScoreValidation, Stat, headline, sort_label, verdict


def measured(score: str, labels: str = "full", auc: Stat | None = Stat(0.7, 0.6, 0.8),
             precision: Stat | None = Stat(0.2, 0.1, 0.3)) -> ScoreValidation:
    return ScoreValidation(score, labels, 3, 0.05, 1000, 40, 50, 0.04, auc, precision,
                           None if auc is None else Stat(0.25, 0.1, 0.4))


def test_the_headline_is_the_full_absorbers_unless_too_few_to_rank():
    full, paper = measured("enc_dec"), measured("enc_dec", "paper")
    assert headline([paper, full], "enc_dec") is full
    unranked = measured("enc_dec", auc=None, precision=None)
    assert headline([unranked, paper], "enc_dec") is paper
    assert headline([unranked], "enc_dec") is unranked and headline([unranked], "parent") is None


def test_verdicts_compare_with_chance_density_and_the_base_rate():
    baseline = measured("density", auc=Stat(0.65, 0.6, 0.7))
    assert "no better than ranking by density alone" in verdict(measured("enc_dec"), baseline)
    assert "better than ranking by density alone" in verdict(measured("enc_dec", auc=Stat(0.8, 0.7, 0.9)), baseline)
    assert "no better than a random order" in verdict(measured("enc_dec", auc=Stat(0.55, 0.45, 0.65)), baseline)
    assert "worse than a random order" in verdict(measured("enc_dec", auc=Stat(0.2, 0.1, 0.3)), baseline)
    assert "holds more absorbers than a random pick" in verdict(measured("enc_dec"), baseline)
    weak = measured("enc_dec", precision=Stat(0.04, 0.0, 0.08))
    assert "holds no more absorbers than a random pick (4% vs 4%)" in verdict(weak, baseline)
    assert verdict(measured("enc_dec", auc=None, precision=None), baseline).startswith("Not measured in this SAE")


def test_a_sort_label_quotes_the_measured_precision():
    assert sort_label("parent", measured("parent")).endswith("precision 0.20 in the top 5% (base rate 0.04)")
    assert sort_label("parent", None).endswith("not validated here")
