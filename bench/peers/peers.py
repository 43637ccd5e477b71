"""One framework in a fresh process: one warm-up epoch (not counted), then one timed epoch per batch size, each on a
fresh model, with the test accuracy after it.

    python bench/peers/peers.py FRAMEWORK [--batch-sizes 64 256] [--data ROOT] [--threads 2] [--seed 0]

Prints one JSON line per batch size (prefixed with RESULT) on stdout. bench.py runs this for every framework in turn.
The warm-up epoch uses the largest batch size (the cheapest epoch) and its own model, which is then thrown away.
The task is the same for all: the course MLP (784-196-49-10, ReLU) on the 60,000 MNIST training images, Adam lr 1e-3,
cross-entropy, one epoch, CPU. Each framework is written the way its own documentation teaches (README.md lists the
pages), fed the same in-memory MNIST (float32 in [0, 1], shape N x 1 x 28 x 28) in the form its docs use: tensors in a
TensorDataset + torch DataLoader (Lightning, Ignite, fastai), numpy arrays (Keras, skorch), tensors (trainlab, the
hand-written loop). The torchvision row instead reads MNIST through the tutorial pipeline (per-sample ToTensor +
Normalize in a DataLoader), so its time includes that input pipeline.

Timing: time.perf_counter around the framework's own "train one epoch" call (fit / run / the loop); model, optimizer
and trainer objects are built before the clock starts, imports and data loading are never inside it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

FRAMEWORKS = ("pytorch_loop", "torchvision_tutorial", "trainlab_api", "lightning", "keras", "fastai", "skorch",
              "ignite")
DEFAULT_DATA = os.environ.get("TRAINLAB_MNIST_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                  "..", "..", "..", "shared", "data"))

if len(sys.argv) > 1 and sys.argv[1] == "keras":
    os.environ["KERAS_BACKEND"] = "torch"  # must be set before keras is imported

import torch  # noqa: E402
from torch import nn  # noqa: E402


def course_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 196), nn.ReLU(), nn.Linear(196, 49), nn.ReLU(), nn.Linear(49, 10))


def mnist_tensors(root: str):
    """torchvision's MNIST (raw idx files) -> float32 tensors in [0, 1], N x 1 x 28 x 28, and int64 labels."""
    from torchvision.datasets import MNIST

    tr, te = MNIST(root, train=True, download=False), MNIST(root, train=False, download=False)
    return (tr.data.unsqueeze(1).float().div_(255), tr.targets.long(),
            te.data.unsqueeze(1).float().div_(255), te.targets.long())


@torch.no_grad()
def accuracy(model: nn.Module, x, y) -> float:
    model.eval()
    pred = torch.cat([model(x[i:i + 2048]).argmax(1) for i in range(0, len(x), 2048)])
    return (pred == y).float().mean().item()


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------------ runners
# Each runner(data, batch_size, seed) builds everything, then returns (train_one_epoch: callable, test_acc: callable).

def run_pytorch_loop(d, bs, seed):
    """The reference: shuffle with randperm, slice in-memory tensors, forward, loss, backward, step. Nothing else."""
    x, y, xt, yt = d
    torch.manual_seed(seed)
    model = course_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def epoch():
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    return epoch, lambda: accuracy(model, xt, yt)


def run_torchvision_tutorial(d, bs, seed, root=None):
    """PyTorch's tutorial pipeline: datasets.MNIST + ToTensor + Normalize, DataLoader(shuffle=True), the tutorial's
    train loop (model.train(); for X, y in dataloader: pred, loss, zero_grad, backward, step; its every-100-batches
    loss print is left out, as every row trains silently)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(root, train=True, download=False, transform=tf)
    if len(d[0]) < len(train):  # --limit (quick checks only)
        train = torch.utils.data.Subset(train, range(len(d[0])))
    test = datasets.MNIST(root, train=False, download=False, transform=tf)
    torch.manual_seed(seed)
    model = course_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(train, batch_size=bs, shuffle=True)

    def epoch():
        model.train()
        for X, yb in loader:
            loss = loss_fn(model(X), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def test_acc():
        model.eval()
        correct = 0
        with torch.no_grad():
            for X, yb in DataLoader(test, batch_size=1000):
                correct += (model(X).argmax(1) == yb).sum().item()
        return correct / len(test)

    return epoch, test_acc


def run_trainlab_api(d, bs, seed):
    """trainlab's Python API, as its README shows: Trainer(model, ...).fit(dataset, epochs=..., batch_size=...)."""
    from torch.utils.data import TensorDataset

    from trainlab import Trainer

    x, y, xt, yt = d
    torch.manual_seed(seed)
    trainer = Trainer(course_mlp(), loss="cross_entropy", optimizer="adam", lr=1e-3, metrics=("accuracy",),
                      progress=False, device="cpu", seed=seed)
    train = TensorDataset(x, y)
    return (lambda: trainer.fit(train, epochs=1, batch_size=bs),
            lambda: trainer.evaluate(TensorDataset(xt, yt))["accuracy"])


def run_lightning(d, bs, seed):
    """LightningModule (training_step + configure_optimizers) and Trainer.fit with a DataLoader, as in Lightning's
    'LightningModule' / 'Lightning in 15 minutes' docs; logger, checkpointing, progress bar and model summary off."""
    import lightning as L
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    x, y, xt, yt = d

    class LitMLP(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = course_mlp()

        def forward(self, inputs):
            return self.model(inputs)

        def training_step(self, batch, batch_idx):
            inputs, target = batch
            loss = F.cross_entropy(self.model(inputs), target)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    L.seed_everything(seed, verbose=False)
    lit = LitMLP()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)
    return (lambda: trainer.fit(lit, loader)), (lambda: accuracy(lit.model, xt, yt))


def run_keras(d, bs, seed):
    """Keras 3 on the torch backend: Sequential + compile + fit on numpy arrays ('Introduction to Keras for
    engineers', 'The Sequential model', 'Training & evaluation with the built-in methods')."""
    import keras

    x, y, xt, yt = (t.numpy() for t in d)
    x, xt = x.reshape(-1, 28, 28), xt.reshape(-1, 28, 28)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(196, activation="relu"),
        keras.layers.Dense(49, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    return (lambda: model.fit(x, y, batch_size=bs, epochs=1, verbose=0),
            lambda: float(model.evaluate(xt, yt, batch_size=1000, verbose=0, return_dict=True)["acc"]))


def run_fastai(d, bs, seed):
    """fastai's 'Pure PyTorch to fastai' tutorial: DataLoaders(train_loader, test_loader) of torch DataLoaders,
    Learner(dls, model, loss_func, opt_func=Adam (fastai's), metrics=accuracy), learn.fit(1, lr). fastai validates on
    the second loader after the epoch, so its timed epoch includes one pass over the 10,000 test images (the
    accuracy reported is that pass). Progress bar and console logging off (learn.no_bar(), learn.no_logging())."""
    import torch.nn.functional as F
    from fastai.vision.all import Adam, DataLoaders, Learner, set_seed  # the tutorial: from fastai.vision.all import *
    from fastai.vision.all import accuracy as fastai_accuracy
    from torch.utils.data import DataLoader, TensorDataset

    x, y, xt, yt = d
    set_seed(seed)
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True),
                      DataLoader(TensorDataset(xt, yt), batch_size=1000), device="cpu")
    learn = Learner(dls, course_mlp(), loss_func=F.cross_entropy, opt_func=Adam, metrics=fastai_accuracy)

    def epoch():
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, lr=1e-3)

    return epoch, lambda: float(learn.recorder.values[-1][-1])


def run_skorch(d, bs, seed):
    """skorch's NeuralNetClassifier on numpy arrays (skorch's 'NeuralNet' user guide and MNIST notebook); the module
    returns logits, so criterion=CrossEntropyLoss; train_split=None (no internal validation split);
    iterator_train__shuffle=True (skorch does not shuffle by default)."""
    from skorch import NeuralNetClassifier

    x, y, xt, yt = (t.numpy() for t in d)
    torch.manual_seed(seed)
    net = NeuralNetClassifier(course_mlp(), criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-3,
                              max_epochs=1, batch_size=bs, train_split=None, iterator_train__shuffle=True,
                              device="cpu", verbose=0)
    return (lambda: net.fit(x, y)), (lambda: float(net.score(xt, yt)))


def run_ignite(d, bs, seed):
    """PyTorch-Ignite's quick start: create_supervised_trainer(model, optimizer, criterion) + trainer.run(loader,
    max_epochs=1); create_supervised_evaluator with Accuracy for the test set."""
    from ignite.engine import create_supervised_evaluator, create_supervised_trainer
    from ignite.metrics import Accuracy
    from ignite.utils import manual_seed
    from torch.utils.data import DataLoader, TensorDataset

    x, y, xt, yt = d
    manual_seed(seed)
    model = course_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = create_supervised_trainer(model, opt, nn.CrossEntropyLoss(), device="cpu")
    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True)

    def test_acc():
        ev = create_supervised_evaluator(model, metrics={"accuracy": Accuracy()}, device="cpu")
        return float(ev.run(DataLoader(TensorDataset(xt, yt), batch_size=1000)).metrics["accuracy"])

    return (lambda: trainer.run(loader, max_epochs=1)), test_acc


# ------------------------------------------------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("framework", choices=FRAMEWORKS)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder holding MNIST/raw (default: $TRAINLAB_MNIST_ROOT "
                                                           "or ../shared/data next to the repository)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-warmup", action="store_true", help="skip the uncounted warm-up epoch (for quick checks)")
    ap.add_argument("--no-paired", dest="paired", action="store_false",
                    help="skip the in-process hand-written-loop epochs before and after each timed epoch")
    ap.add_argument("--limit", type=int, help="train on the first N images only (for quick checks; not the benchmark)")
    args = ap.parse_args()

    t_import = time.perf_counter()
    runner = globals()["run_" + args.framework]
    # import the framework up front so that its import cost never lands in an epoch
    {"lightning": lambda: __import__("lightning"), "keras": lambda: __import__("keras"),
     "fastai": lambda: __import__("fastai.vision.all"), "skorch": lambda: __import__("skorch"),
     "ignite": lambda: __import__("ignite.engine"), "trainlab_api": lambda: __import__("trainlab").Trainer,
     }.get(args.framework, lambda: None)()
    torch.set_num_threads(args.threads)  # after the imports, so that no import can change it afterwards
    import_s = time.perf_counter() - t_import

    t_load = time.perf_counter()
    data = mnist_tensors(args.data)
    if args.limit:
        data = (data[0][:args.limit], data[1][:args.limit], data[2], data[3])
    load_s = time.perf_counter() - t_load
    kwargs = {"root": args.data} if args.framework == "torchvision_tutorial" else {}

    warmup = None
    if not args.no_warmup:
        bs = max(args.batch_sizes)
        epoch, _ = runner(data, bs, args.seed + 1, **kwargs)  # a separate model, thrown away
        warmup = {"batch_size": bs, "epoch_s": timed(epoch)}
    for bs in args.batch_sizes:
        # paired reference: a hand-written loop epoch right before and right after the framework's epoch, in this
        # process (A-B-A), so that a ratio survives load changes on a shared machine that happen between processes
        ref_before = timed(run_pytorch_loop(data, bs, args.seed + 2)[0]) if args.paired else None
        epoch, test_acc = runner(data, bs, args.seed, **kwargs)
        epoch_s = timed(epoch)
        ref_after = timed(run_pytorch_loop(data, bs, args.seed + 3)[0]) if args.paired else None
        acc = test_acc()
        print("RESULT " + json.dumps({
            "framework": args.framework, "batch_size": bs, "epoch_s": epoch_s, "test_acc": acc, "warmup": warmup,
            "ref_loop_before_s": ref_before, "ref_loop_after_s": ref_after,
            "paired_ratio": epoch_s / ((ref_before + ref_after) / 2) if args.paired else None,
            "import_s": import_s, "data_load_s": load_s, "threads": torch.get_num_threads(),
            "n_train": int(len(data[0])), "n_test": int(len(data[2])),
        }), flush=True)


if __name__ == "__main__":
    main()
