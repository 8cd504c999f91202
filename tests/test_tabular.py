"""Tabular datasets: scikit-learn's bundled sets and CSV files, including every bad-CSV message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deeprecipes.data.tabular import load_csv
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.registry import create_dataset, list_datasets

BUNDLED = {
    # name: (rows, features, classes; 0 = regression)
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast-cancer": (569, 30, 2),
    "digits": (1797, 64, 10),
    "diabetes": (442, 10, 0),
}


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_sets(name):
    rows, features, classes = BUNDLED[name]
    data = create_dataset(name)
    assert name in list_datasets()
    assert data.val is None
    n_test = int(np.ceil(rows * 0.25))
    assert data.sizes() == {"train": rows - n_test, "test": n_test}
    assert data.train.x.shape == (rows - n_test, features) and data.train.x.dtype == torch.float32
    x = data.train.x.double().numpy()
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    std = x.std(0)
    constant = std < 1e-6  # digits has pixels that are always 0 in the training part
    np.testing.assert_allclose(std[~constant], 1.0, atol=1e-4)
    assert bool(constant.any()) == (name == "digits")
    assert data.meta["num_classes"] == classes
    assert len(data.meta["classes"]) == classes
    assert data.meta["task"] == ("classification" if classes else "regression")
    if classes:
        assert data.train.y.dtype == torch.int64
        assert set(data.train.y.tolist()) == set(range(classes))
    else:
        assert data.train.y.dtype == torch.float32


def test_stratified_and_seeded():
    a, b, c = create_dataset("iris"), create_dataset("iris"), create_dataset("iris", seed=1)
    assert a.train.x.equal(b.train.x)
    assert not a.train.x.equal(c.train.x)
    assert np.bincount(a.test.y.numpy()).tolist() in ([13, 13, 12], [13, 12, 13], [12, 13, 13])


def test_standardize_off_and_test_size():
    raw = create_dataset("iris", standardize=False, test_size=0.2)
    assert raw.sizes() == {"train": 120, "test": 30}
    assert float(raw.train.x.min()) > 0  # the raw measurements are positive centimetres
    assert raw.meta["standardize"] is None


def test_digits_meta_shape():
    assert create_dataset("digits").meta["shape"] == [8, 8]


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_bad_test_size(bad):
    with pytest.raises(ConfigError, match="test_size"):
        create_dataset("wine", test_size=bad)


# ----------------------------------------------------------------------------------------------------------------
# CSV


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def iris_like(n: int = 40) -> str:
    rng = np.random.default_rng(0)
    lines = ["length,width,species"]
    for i in range(n):
        species = ["setosa", "virginica"][i % 2]
        lines.append(f"{rng.normal(5 + i % 2):.3f},{rng.normal(3):.3f},{species}")
    return "\n".join(lines) + "\n"


def test_csv_classification(tmp_path):
    path = write(tmp_path, iris_like())
    data = create_dataset("csv", path=path, target="species")
    assert data.sizes() == {"train": 32, "test": 8}
    assert data.meta["classes"] == ["setosa", "virginica"]
    assert data.meta["task"] == "classification" and data.meta["num_classes"] == 2
    assert data.meta["feature_names"] == ["length", "width"]
    assert data.meta["files"] == [path]
    assert data.train.x.shape == (32, 2) and data.train.y.dtype == torch.int64
    assert np.bincount(data.test.y.numpy()).tolist() == [4, 4]
    assert torch.allclose(data.train.x.double().mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6)


def test_csv_regression_and_feature_choice(tmp_path):
    lines = ["a,b,c,y"] + [f"{i},{i * 2},{i % 3},{i * 0.5 + 0.25}" for i in range(50)]
    path = write(tmp_path, "\n".join(lines))
    data = create_dataset("csv", path=path, target="y", features=["c", "a"], standardize=False)
    assert data.meta["task"] == "regression" and data.meta["num_classes"] == 0
    assert data.meta["feature_names"] == ["c", "a"]
    assert data.train.y.dtype == torch.float32
    x, y = data.train.x.numpy(), data.train.y.numpy()
    np.testing.assert_allclose(y, x[:, 1] * 0.5 + 0.25)
    np.testing.assert_allclose(x[:, 0], x[:, 1] % 3)


def test_csv_auto_task(tmp_path):
    few = ["x,y"] + [f"{i},{i % 3}" for i in range(30)]
    assert load_csv(write(tmp_path, "\n".join(few)), "y").task == "classification"
    many = ["x,y"] + [f"{i},{i}" for i in range(30)]
    assert load_csv(write(tmp_path, "\n".join(many)), "y").task == "regression"
    fractional = ["x,y"] + [f"{i},{i % 2 + 0.5}" for i in range(30)]
    assert load_csv(write(tmp_path, "\n".join(fractional)), "y").task == "regression"
    forced = load_csv(write(tmp_path, "\n".join(many)), "y", task="classification")
    assert forced.task == "classification" and len(forced.classes) == 30


def test_csv_numeric_labels_sorted_numerically(tmp_path):
    rows = ["x,label"] + [f"{i},{[2, 10, 1][i % 3]}" for i in range(9)]
    table = load_csv(write(tmp_path, "\n".join(rows)), "label")
    assert table.classes == ["1", "2", "10"]
    assert table.y.tolist() == [1, 2, 0] * 3
    assert table.x.shape == (9, 1) and table.x.dtype == np.float64


def test_csv_semicolons_quotes_bom_and_blank_lines(tmp_path):
    text = '\ufeff"first";"second";"kind"\n1.5;2;a\n\n3;4;b\n5;6;a\n7;8;b\n'
    table = load_csv(write(tmp_path, text), "kind")
    assert table.features == ["first", "second"]
    np.testing.assert_allclose(table.x[:, 0], [1.5, 3, 5, 7])


def error(tmp_path: Path, text: str | None, exc: type[Exception] = DataError, **kwargs) -> str:
    """Load a bad CSV through the registry; return its one-line message (which must name the file)."""
    path = write(tmp_path, text) if text is not None else str(tmp_path / "absent.csv")
    kwargs.setdefault("target", "label")
    with pytest.raises(exc) as info:
        create_dataset("csv", path=path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    if exc is DataError:
        assert path in message
    return message


def test_csv_missing_file(tmp_path):
    assert "no such file" in error(tmp_path, None)


def test_csv_folder(tmp_path):
    with pytest.raises(DataError, match="folder"):
        load_csv(tmp_path, "label")


def test_csv_empty_file(tmp_path):
    assert "empty file" in error(tmp_path, "")
    assert "empty file" in error(tmp_path, "\n  \n")


def test_csv_header_only(tmp_path):
    assert "no data rows" in error(tmp_path, "a,b,label\n")


def test_csv_unknown_target(tmp_path):
    message = error(tmp_path, "a,b,y\n1,2,0\n", target="label")
    assert "no target column 'label'" in message and "columns: a, b, y" in message


def test_csv_no_header(tmp_path):
    assert "header row" in error(tmp_path, "1,2,0\n3,4,1\n")


def test_csv_unknown_feature(tmp_path):
    message = error(tmp_path, "a,b,label\n1,2,0\n", features=["a", "c"])
    assert "no feature column 'c'" in message and "columns: a, b, label" in message


def test_csv_missing_value(tmp_path):
    message = error(tmp_path, "a,b,label\n1,2,x\n3,,y\n")
    assert "line 3 (data row 2)" in message and "column 'b'" in message and "missing value" in message
    message = error(tmp_path, "a,b,label\n1,2,x\n3,NA,y\n")
    assert "line 3" in message and "column 'b'" in message and "missing value" in message


def test_csv_missing_target(tmp_path):
    message = error(tmp_path, "a,label\n1,x\n2,\n3,y\n")
    assert "line 3" in message and "column 'label'" in message and "missing value" in message


def test_csv_non_numeric_feature(tmp_path):
    message = error(tmp_path, "a,b,label\n1,2,x\n3,4,y\n5,seven,x\n")
    assert "line 4 (data row 3)" in message and "column 'b'" in message and "'seven' is not a number" in message


def test_csv_infinite_feature(tmp_path):
    assert "not a finite number" in error(tmp_path, "a,label\n1,x\ninf,y\n")


@pytest.mark.parametrize(
    "value, reason",
    [
        ("1e308", "beyond the range of float32"),
        ("1e39", "beyond the range of float32"),
        ("-3.5e38", "beyond the range of float32"),
        ("1e309", "not a finite number"),
        ("-inf", "not a finite number"),
    ],
)
@pytest.mark.parametrize("row, column", [(3, "a"), (38, "a"), (38, "y")])
def test_csv_values_beyond_float32_are_rejected_naming_file_row_and_column(tmp_path, value, reason, row, column):
    """Issue "trustworthy runs": 1e308 or 1e39 in the test rows gave NaN or inf metrics, in the training rows a
    misleading "try a lower learning rate". Models train in float32, so the loader refuses such a value in a
    feature or the target, before the file is split."""
    rows = [[f"{i}", f"{i * 0.5:.1f}"] for i in range(40)]
    rows[row][["a", "y"].index(column)] = value
    text = "a,y\n" + "\n".join(",".join(r) for r in rows) + "\n"
    message = error(tmp_path, text, target="y", task="regression")
    assert f"line {row + 2} (data row {row + 1}), column '{column}': '{value}' is {reason}" in message


def test_csv_float32_limits_are_accepted(tmp_path):
    rows = ["a,y"] + [f"{3.4e38 if i == 0 else -1e38 if i == 1 else i},{i * 1.5}" for i in range(20)]
    table = load_csv(write(tmp_path, "\n".join(rows)), "y")
    assert table.x[0, 0] == 3.4e38 and table.task == "regression"
    data = create_dataset("csv", path=write(tmp_path, "\n".join(rows)), target="y")
    assert torch.isfinite(data.train.x).all() and torch.isfinite(data.test.x).all()


def test_csv_series_rejects_values_beyond_float32(tmp_path):
    path = write(tmp_path, "t,v\n" + "".join(f"{i},{1e39 if i == 7 else i}\n" for i in range(100)))
    with pytest.raises(DataError, match=r"line 9 \(data row 8\), column 'v': '1e\+39' is beyond the range of float32"):
        create_dataset("csv-series", path=path, column="v", window=5, horizon=5)


def test_csv_non_numeric_regression_target(tmp_path):
    message = error(tmp_path, "a,label\n1,2.5\n2,tall\n", task="regression")
    assert "line 3" in message and "column 'label'" in message and "not a number" in message


def test_csv_single_class(tmp_path):
    message = error(tmp_path, "a,label\n1,cat\n2,cat\n3,cat\n")
    assert "single class ('cat')" in message and "'label'" in message


def test_csv_ragged_rows(tmp_path):
    message = error(tmp_path, "a,b,label\n1,2,x\n3,4\n")
    assert "line 3 (data row 2) has 2 fields, the header has 3" in message
    assert "has 4 fields" in error(tmp_path, "a,b,label\n1,2,x,9\n")


def test_csv_class_too_small_to_stratify(tmp_path):
    rows = ["a,label"] + [f"{i},{'big' if i else 'tiny'}" for i in range(20)]
    message = error(tmp_path, "\n".join(rows))
    assert "class 'tiny'" in message and "stratified" in message


def test_csv_duplicate_header(tmp_path):
    assert "repeats column name(s) 'a'" in error(tmp_path, "a,a,label\n1,2,x\n")


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as info:
        load_csv(path, "label")
    assert str(path) in str(info.value)


def test_csv_config_errors(tmp_path):
    path = write(tmp_path, iris_like())
    with pytest.raises(ConfigError, match="needs path"):
        create_dataset("csv", target="species")
    with pytest.raises(ConfigError, match="needs target") as info:
        create_dataset("csv", path=path)
    assert "length, width, species" in str(info.value)
    with pytest.raises(ConfigError, match="task"):
        create_dataset("csv", path=path, target="species", task="clustering")
    with pytest.raises(ConfigError, match="both the target and a feature"):
        create_dataset("csv", path=path, target="species", features=["length", "species"])
    with pytest.raises(ConfigError):
        create_dataset("csv", path=path, target="species", features="length")


def test_csv_text_column_named_with_a_fix(tmp_path):
    message = error(tmp_path, "name,a,label\nann,1,x\nbob,2,y\n")
    assert "column 'name'" in message and "holds text ('ann')" in message and "'features'" in message


def test_csv_target_name_case_hint(tmp_path):
    message = error(tmp_path, "a,Label\n1,x\n2,y\n", target="label")
    assert "no target column 'label'" in message and "did you mean 'Label'" in message
    message = error(tmp_path, "A,label\n1,x\n2,y\n", features=["a"])
    assert "no feature column 'a'" in message and "did you mean 'A'" in message


def test_csv_constant_regression_target(tmp_path):
    message = error(tmp_path, "a,label\n1,2.5\n2,2.5\n3,2.5\n", task="regression")
    assert "'label' has a single value (2.5)" in message


# ----------------------------------------------------------------------------------------------------------------
# the course's iris split, and Boston housing from a CSV file


def test_iris_course_split_unstratified():
    data = create_dataset("iris", test_size=0.33, seed=42, standardize=False, stratify=False, drop_last=True)
    assert data.sizes() == {"train": 99, "test": 50}
    strat = create_dataset("iris", test_size=0.33, seed=42, standardize=False, drop_last=True)
    assert not strat.test.y.equal(data.test.y)


BOSTON_BUNDLE_HEADER = "CRIM,ZN,INDUS,CHAS,NOX,RM,AGE,DIS,RAD,TAX,PT,B,LSTAT,MV"  # as the cookbook's file


def boston_csv(folder: Path, n: int = 40, header: str = BOSTON_BUNDLE_HEADER) -> Path:
    rng = np.random.default_rng(0)
    lines = [header]
    for i in range(n):
        row = rng.uniform(0, 10, 13).round(3).tolist()
        medv = 50.0 if i % 10 == 0 else round(10 + row[5] * 2, 3)  # 4 censored rows
        lines.append(",".join(map(str, [*row, medv])))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "boston_housing.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_boston_from_a_path(tmp_path):
    path = boston_csv(tmp_path)
    data = create_dataset("boston", path=str(path))
    assert data.sizes() == {"train": 30, "test": 10}
    assert data.meta["feature_names"][10] == "PTRATIO" and len(data.meta["feature_names"]) == 13
    assert data.meta["target"] == "MEDV" and data.meta["files"] == [str(path)]
    dropped = create_dataset("boston", path=str(path), drop_censored=True, features=["rm", "PTRATIO", "LSTAT"])
    assert sum(dropped.sizes().values()) == 36 and dropped.meta["censored_dropped"] == 4
    assert dropped.meta["feature_names"] == ["RM", "PTRATIO", "LSTAT"]
    assert float(torch.cat([dropped.train.y, dropped.test.y]).max()) < 50


def test_boston_from_the_data_folder(tmp_path, monkeypatch):
    boston_csv(tmp_path / "boston", header=BOSTON_BUNDLE_HEADER.replace("PT", "PTRATIO").replace("MV", "MEDV"))
    monkeypatch.setenv("DEEPRECIPES_DATA", str(tmp_path))
    assert create_dataset("boston").sizes() == {"train": 30, "test": 10}


def test_boston_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPRECIPES_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        create_dataset("boston")
    message = str(info.value)
    assert "\n" not in message and "boston_housing.csv not found" in message
    assert "data.path" in message and str(tmp_path / "boston") in message and "load_boston" in message
    with pytest.raises(DataError, match="no such file"):
        create_dataset("boston", path=str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no target column MEDV"):
        create_dataset("boston", path=str(bad))
    with pytest.raises(DataError, match="no feature column 'RMX'"):
        create_dataset("boston", path=str(boston_csv(tmp_path / "ok")), features=["rmx"])
