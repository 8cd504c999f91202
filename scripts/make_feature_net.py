"""Write the MNIST feature network that scores generated digits (FID, Inception-style score) from a run of the
``cnn-mnist-fast`` recipe, as ``src/deeprecipes/models/weights/mnist-cnn.safetensors``, and print its SHA-256 for
``deeprecipes.models.feature_net.SHA256``.

    deeprecipes run cnn-mnist-fast --seed 0 --out runs/feature-net
    python scripts/make_feature_net.py runs/feature-net

The shipped file came from exactly these two commands (see the README's generative-models section). The file holds
the weights (safetensors) and, as metadata, the CNN's builder arguments, the recipe, the seed and the run's final
test accuracy; nothing in it is code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from safetensors.torch import save_file

import deeprecipes
from deeprecipes.models.feature_net import WEIGHTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    run = deeprecipes.load_run(args.run_dir, which="latest")
    if run.name != "cnn":
        raise SystemExit(f"error: {args.run_dir} is a run of '{run.name}', not of a CNN")
    summary = json.loads((args.run_dir / "summary.json").read_text(encoding="utf-8"))
    meta = {
        "args": json.dumps(run.args, sort_keys=True),
        "recipe": run.config.name,
        "seed": str(run.config.train.seed),
        "test_accuracy": str(summary["metrics"]["test_accuracy"]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in run.model.state_dict().items()}
    save_file(state, str(args.out), metadata=meta)
    print(args.out, hashlib.sha256(args.out.read_bytes()).hexdigest(), meta)


if __name__ == "__main__":
    main()
