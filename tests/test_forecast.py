"""GRU encoder-decoder forecaster: the shipped CO2 series, CSV columns, windows and the chronological split, the
source's normalisation and loss, the naive baseline, and short end-to-end runs of the forecast recipes."""

import numpy as np
import pytest
import torch

import deeprecipes
from deeprecipes.data.timeseries import csv_series, load_co2, split_windows
from deeprecipes.errors import ConfigError, DataError
from deeprecipes.models.forecast import normalise
from deeprecipes.recipes import load_recipe
from deeprecipes.registry import create_dataset, create_model

torch.set_num_threads(1)


def test_co2_series_ships_and_is_complete():
    values, dates = load_co2()
    assert len(values) == 2284 and dates[0] == "19580329" and dates[-1] == "20011229"
    assert np.isfinite(values).all() and 310 < values.min() < values.max() < 375
    d = create_dataset("co2")
    assert d.train.x.shape[1:] == (40, 1) and d.test.y.shape[1:] == (40, 1)
    assert d.meta["units"] == "ppmv"


def test_windows_split_chronologically_without_leaking_test_targets():
    series = np.arange(200.0)
    d = split_windows(series, name="t", window=10, horizon=5, test_fraction=0.2, val_fraction=0.1)
    cut = d.meta["test_cut"]
    assert cut == 160
    assert d.train.y.max() < d.meta["val_cut"] and d.val.y.max() < cut
    assert d.test.y.min() >= cut and d.test.y.max() == 199  # every test target after the cut, up to the end
    assert torch.equal(d.train.x[3, :, 0], torch.arange(3.0, 13.0))  # window i = values i .. i+9
    assert torch.equal(d.train.y[3, :, 0], torch.arange(13.0, 18.0))
    with pytest.raises(ConfigError, match="'window' must be >= 1"):
        split_windows(series, name="t", window=0, horizon=5, test_fraction=0.2)
    with pytest.raises(DataError, match="no test window"):
        split_windows(series[:20], name="t", window=10, horizon=5, test_fraction=0.2)


def test_csv_column(tmp_path):
    path = tmp_path / "s.csv"
    rows = "\n".join(f"{i},{np.sin(i / 5):.4f}" for i in range(120))
    path.write_text("t,value\n" + rows + "\n")
    d = csv_series(path=str(path), column="value", window=10, horizon=10)
    assert d.train.x.shape[1:] == (10, 1) and d.meta["columns"] == ["value"]
    with pytest.raises(DataError, match="no column 'Value' \\(did you mean 'value'"):
        csv_series(path=str(path), column="Value")
    path.write_text("t,value\n0,1\n1,\n2,3\n" + "\n".join(f"{i},{i}" for i in range(3, 60)) + "\n")
    with pytest.raises(DataError, match="line 3 .*column 'value': missing value"):
        csv_series(path=str(path), column="value", window=10, horizon=10)
    d = csv_series(path=str(path), column="value", window=10, horizon=10, missing="interpolate")
    assert d.train.x[0, 1, 0] == 2.0  # filled halfway between 1 and 3
    with pytest.raises(ConfigError, match="needs column"):
        csv_series(path=str(path))


def test_normalisation_uses_the_input_window_only():
    x = torch.randn(4, 40, 2) * 3 + 10
    xn, mean, scale = normalise(x)
    assert torch.allclose(xn.mean(1), torch.full((4, 2), -1e-5 / scale[:, 0].mean()), atol=1e-4)
    assert torch.allclose(xn.std(1, unbiased=False) * 2.5, torch.ones(4, 2), atol=1e-3)
    m = create_model("gru-forecaster")
    y = torch.randn(4, 40, 1)
    x1 = torch.randn(4, 40, 1)
    torch.manual_seed(0)
    # the model's forecast moves with the window: shift and scale the input, the forecast follows exactly
    out = m(x1)
    assert torch.allclose(m(x1 * 7 + 300), out * 7 + 300, atol=1e-3)
    # the future never enters the forecast
    loss1, _ = m.compute_loss((x1, y))
    loss2, _ = m.compute_loss((x1, y + 1))
    assert not torch.isclose(loss1, loss2) and torch.equal(m(x1), out)


def test_source_loss_is_half_the_summed_squared_error():
    m = create_model("gru-forecaster", horizon=8)
    x, y = torch.randn(5, 8, 1) + 3, torch.randn(5, 8, 1) + 3
    xn, mean, scale = normalise(x)
    err = m.forward_normalised(xn) - (y - mean) / scale
    loss, _ = m.compute_loss((x, y))
    assert torch.allclose(loss, 0.5 * err.pow(2).sum())
    m2 = create_model("gru-forecaster", horizon=8, loss="mse")
    m2.load_state_dict(m.state_dict())
    assert torch.allclose(m2.compute_loss((x, y))[0], err.pow(2).mean())
    ev = m.eval_step((x, y))
    assert torch.allclose(ev["naive_mse"], (x[:, -1:] - y).pow(2).mean((1, 2)))


def test_initialised_like_the_source():
    m = create_model("gru-forecaster")
    b = m.encoder.bias_ih_l0.detach()
    assert torch.all(b[:24] == 1.0) and torch.all(b[24:] == 0.0)
    assert m.output_scale_factor.item() == 1.0
    with pytest.raises(ConfigError, match="horizon"):
        create_model("gru-forecaster", horizon=0)
    with pytest.raises(ConfigError, match="longer than the input window"):
        create_model("gru-forecaster", horizon=50).check_data(torch.zeros(3, 40, 1))


def test_recipes_use_the_books_settings():
    for name in ("forecast-gru-co2", "forecast-gru-co2-book"):
        cfg = load_recipe(name)
        assert cfg.model.args["hidden_size"] == 12 and cfg.model.args["num_layers"] == 2
        assert (cfg.optimizer.name, cfg.optimizer.lr) == ("rmsprop-tf", 0.007)
        assert cfg.optimizer.args == {"decay": 0.92, "momentum": 0.5}
        assert cfg.train.l2 == 0.003 / 2 and cfg.data.args["window"] == cfg.model.args["horizon"] == 40
    book = load_recipe("forecast-gru-co2-book")
    assert (book.train.batch_size, book.train.max_steps) == (5, 151)


def test_short_run_beats_untrained_and_draws_the_forecast(tmp_path):
    from deeprecipes.data import Batches
    from deeprecipes.training import Engine

    over = {"train.max_steps": 150, "train.threads": 1}
    torch.manual_seed(0)
    cfg = load_recipe("forecast-gru-co2-book")
    test = create_dataset("co2").test
    start = Engine(create_model(cfg.model.name, **cfg.model.args)).evaluate(
        Batches(*test.tensors(), batch_size=1000, shuffle=False)
    )["mse"]
    r = deeprecipes.run("forecast-gru-co2-book", overrides=over, out=tmp_path, progress=False)
    m = r.metrics
    assert m["test_mse"] < 0.5 * start
    assert m["test_naive_rmse"] == pytest.approx(m["test_naive_mse"] ** 0.5, rel=0.05)
    assert m["test_rmse"] < m["test_naive_rmse"]  # the seasonal cycle beats repeating the last value
    assert (tmp_path / "figures" / "forecast.png").stat().st_size > 5000
