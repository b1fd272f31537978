from __future__ import annotations

from lenet_tf.experiments.benchmark import PACE_OPTIONS, benchmark_markdown, flagship_pace, training_throughput


def test_training_throughput_compares_both_paths(tiny) -> None:
    result = training_throughput(tiny, "classic", images=128, epochs=1, batch_size=32)
    assert result["train_images"] == 128 and result["epochs_measured"] == 1
    assert result["package_images_per_s"] > 0 and result["plain_images_per_s"] > 0
    assert result["ratio_package_to_plain"] == result["package_images_per_s"] / result["plain_images_per_s"]
    assert len(result["epoch_ratios"]) == 1


def test_benchmark_markdown_tables() -> None:
    results = {
        "environment": {"cpu": "cpu", "cpu_count": 2, "tensorflow": "2", "keras": "3", "python": "3.11",
                        "timestamp": "t"},
        "data": {"source": "sample", "load_seconds": 1.5},
        "training": [{"model": "standard", "batch_size": 32, "val_batch_size": 1024, "train_images": 8,
                      "package_images_per_s": 100.0, "plain_images_per_s": 125.0, "ratio_package_to_plain": 0.8,
                      "epoch_ratios": [0.7, 0.8, 0.95]}],
        "flagship_pace": [{"option": "numpy", "members_per_graph": 1, "member_images_per_s": 2000.0,
                           "ratio_to_first": 1.0}],
        "inference": {"members": 10, "images": 100, "seconds": 2.0, "images_per_s": 50.0},
        "pipeline": {"members": 2, "max_train": 100, "epochs": 1, "wall_seconds": 9.0, "peak_rss_mib": 900.0,
                     "stages_seconds": {"load_and_split": 1.0, "train": 5.0, "predict": 1.0, "total": 7.0}},
    }  # fmt: skip
    text = benchmark_markdown(results)
    assert "| standard | 32 | 1024 | 8 | 100 | 125 | 0.80 | 0.70–0.95 |" in text
    assert "10-member optimized ensemble on 100 images: 2.00 s (50 images/s)" in text
    assert "| 9.0 | 1.0 | 5.0 | 1.0 | 7.0 | 900 |" in text
    assert "| numpy | 2000 | 1.00 |" in text


def test_flagship_pace_compares_every_option_to_the_first(tiny) -> None:
    rows = flagship_pace(tiny, images=128, epochs=1)  # one batch of 128 per epoch and option
    assert [r["option"] for r in rows] == [option[0] for option in PACE_OPTIONS]
    assert rows[0]["ratio_to_first"] == 1.0 and all(r["member_images_per_s"] > 0 for r in rows)
    assert [r["members_per_graph"] for r in rows] == [1, 1, 1, 2, 2]
    assert rows[3]["ratio_to_first"] == rows[3]["member_images_per_s"] / rows[0]["member_images_per_s"]


def test_training_throughput_times_the_same_fit_call_on_both_sides(tiny, monkeypatch) -> None:
    """Like for like: both sides run ``model.fit`` with the same training and validation batch
    sizes and data, so the ratio measures what the package adds around ``model.fit``, not a
    different validation pass (it validated at batch 32 on the plain side and 1024 on the package's)."""
    import keras

    calls: list[dict] = []
    original = keras.Model.fit

    def recording_fit(self, x=None, y=None, **kwargs):
        calls.append(
            {
                "train_images": len(x), "batch_size": kwargs.get("batch_size"),
                "validation_batch_size": kwargs.get("validation_batch_size") or kwargs.get("batch_size"),
                "validation_images": len(kwargs["validation_data"][0]), "shuffle": kwargs.get("shuffle", True),
            }
        )  # fmt: skip
        return original(self, x, y, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    result = training_throughput(tiny, "mlp", images=64, epochs=1, batch_size=16)
    assert len(calls) == 4  # warm-up + 1 measured epoch, package then plain
    assert all(call == calls[0] for call in calls), calls
    assert calls[0]["batch_size"] == 16 and result["val_batch_size"] == calls[0]["validation_batch_size"]
