from __future__ import annotations

from lenet_tf.experiments.benchmark import PACE_OPTIONS, benchmark_markdown, flagship_pace, training_throughput


def test_training_throughput_compares_both_paths(tiny) -> None:
    result = training_throughput(tiny, "classic", images=128, epochs=1, batch_size=32)
    assert result["train_images"] == 128 and result["epochs_measured"] == 1
    assert result["package_images_per_s"] > 0 and result["plain_images_per_s"] > 0
    assert result["ratio_package_to_plain"] == result["package_images_per_s"] / result["plain_images_per_s"]


def test_benchmark_markdown_tables() -> None:
    results = {
        "environment": {"cpu": "cpu", "cpu_count": 2, "tensorflow": "2", "keras": "3", "python": "3.11",
                        "timestamp": "t"},
        "data": {"source": "sample", "load_seconds": 1.5},
        "training": [{"model": "standard", "batch_size": 32, "train_images": 8, "package_images_per_s": 100.0,
                      "plain_images_per_s": 125.0, "ratio_package_to_plain": 0.8}],
        "flagship_pace": [{"option": "numpy", "members_per_graph": 1, "member_images_per_s": 2000.0,
                           "ratio_to_first": 1.0}],
        "inference": {"members": 10, "images": 100, "seconds": 2.0, "images_per_s": 50.0},
        "pipeline": {"members": 2, "max_train": 100, "epochs": 1, "wall_seconds": 9.0, "peak_rss_mib": 900.0,
                     "stages_seconds": {"load_and_split": 1.0, "train": 5.0, "predict": 1.0, "total": 7.0}},
    }  # fmt: skip
    text = benchmark_markdown(results)
    assert "| standard | 32 | 8 | 100 | 125 | 0.80 |" in text
    assert "10-member optimized ensemble on 100 images: 2.00 s (50 images/s)" in text
    assert "| 9.0 | 1.0 | 5.0 | 1.0 | 7.0 | 900 |" in text
    assert "| numpy | 2000 | 1.00 |" in text


def test_flagship_pace_compares_every_option_to_the_first(tiny) -> None:
    rows = flagship_pace(tiny, images=256, epochs=1)
    assert [r["option"] for r in rows] == [option[0] for option in PACE_OPTIONS]
    assert rows[0]["ratio_to_first"] == 1.0 and all(r["member_images_per_s"] > 0 for r in rows)
    assert [r["members_per_graph"] for r in rows] == [1, 1, 1, 2, 2]
    assert rows[3]["ratio_to_first"] == rows[3]["member_images_per_s"] / rows[0]["member_images_per_s"]
