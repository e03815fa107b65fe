"""`osr recsys`: fit and score a recommender (Dask ALS, DSGD or `implicit`) on MovieLens 100K or synthetic data."""

from __future__ import annotations

import argparse
import json
import sys

METHODS = ("als", "als-implicit", "dsgd", "implicit")


def register(subparsers) -> argparse.ArgumentParser:
    """Add `recsys` and its subcommands to an argparse subparsers object."""
    rec = subparsers.add_parser(
        "recsys", help="recommenders: Dask ALS / DSGD / implicit, fitted and scored",
        description="Matrix-factorisation recommenders on Dask (OSR_DASK_SCHEDULER, or a LocalCluster of "
                    "OSR_DASK_WORKERS workers) and the `implicit` single-machine reference.")
    rec.set_defaults(func=lambda a: (rec.print_help(), 0)[1])
    sub = rec.add_subparsers(dest="recsys_command", metavar="COMMAND")
    ev = sub.add_parser(
        "evaluate", help="fit one method on a seeded 80/20 split and print RMSE / precision@10 / MAP@10",
        description="Fit a method on the fixed seeded 80/20 split of MovieLens 100K (or of synthetic "
                    "latent-factor interactions) and score it: RMSE for explicit models; precision@10 and "
                    "MAP@10 with ratings >= 4 as positives and train items removed (pipelines.recsys.metrics).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ev.add_argument("--data", choices=("ml100k", "synthetic"), default="ml100k", help="dataset")
    ev.add_argument("--method", choices=METHODS, default="als", help="als = explicit ALS-WR on Dask, "
                    "als-implicit = confidence-weighted ALS on Dask, dsgd = DSGD on Dask, implicit = the library")
    ev.add_argument("--als-method", choices=("broadcast", "block"), default="broadcast",
                    help="distribution of ALS: broadcast factors, or item blocks with partial Gram sums")
    ev.add_argument("--rank", type=int, default=10, help="latent factors")
    ev.add_argument("--iters", type=int, default=10, help="ALS iterations")
    ev.add_argument("--epochs", type=int, default=30, help="DSGD epochs")
    ev.add_argument("--reg", type=float, default=None,
                    help="lam (default 0.1 explicit ALS-WR / DSGD, 10 implicit)")
    ev.add_argument("--alpha", type=float, default=0.5, help="implicit confidence 1 + alpha * r")
    ev.add_argument("--n", type=int, default=1_000_000, help="synthetic interactions (before the split)")
    ev.add_argument("--users", type=int, default=20_000, help="synthetic users")
    ev.add_argument("--items", type=int, default=5_000, help="synthetic items")
    ev.add_argument("--seed", type=int, default=0, help="seed of the data and of the factors")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_evaluate)
    return rec


def cmd_evaluate(args) -> int:
    import numpy as np

    from pipelines.recsys import metrics
    from pipelines.recsys.cluster import dask_client
    from pipelines.recsys.ratings import random_split

    if args.data == "ml100k":
        from pipelines.recsys.movielens import DatasetError, ml100k_split

        try:
            split = ml100k_split(seed=args.seed)
        except DatasetError as exc:
            print(f"osr recsys: {exc}", file=sys.stderr)
            return 2
    else:
        from pipelines.recsys.synthetic import latent_factor_interactions

        df = latent_factor_interactions(args.users, args.items, args.n, seed=args.seed)
        split = random_split(df, 0.2, seed=args.seed)
    implicit = args.method in ("als-implicit", "implicit")
    reg = args.reg if args.reg is not None else (10.0 if implicit else 0.1)
    R = split.train
    if implicit:
        R = R.copy()
        R.data = np.ones_like(R.data)
    out = {"data": args.data, "method": args.method, "n_train": int(split.train.nnz), "rank": args.rank, "reg": reg}
    if args.method == "implicit":
        from pipelines.recsys.implicit_reference import fit_implicit

        r = fit_implicit(R, rank=args.rank, reg=reg, alpha=args.alpha, iterations=args.iters, seed=args.seed)
        X, Y, out["fit_s"] = r.user_factors, r.item_factors, r.fit_seconds
    else:
        with dask_client() as client:
            if args.method == "dsgd":
                from pipelines.recsys.dsgd import fit_dsgd

                r = fit_dsgd(client, R, rank=args.rank, reg=reg, weighted_reg=True, epochs=args.epochs, seed=args.seed)
            else:
                from pipelines.recsys.dask_als import fit_als

                r = fit_als(client, R, rank=args.rank, reg=reg, iterations=args.iters, implicit=implicit,
                            alpha=args.alpha, weighted_reg=not implicit, method=args.als_method, seed=args.seed)
        X, Y, out["fit_s"], out["loss"] = r.user_factors, r.item_factors, r.fit_seconds, r.loss
    if not implicit:
        out["rmse"] = metrics.rating_rmse(X, Y, split.test)
    users = None
    if X.shape[0] > 5000:
        users = np.random.default_rng(0).choice(X.shape[0], 5000, replace=False)
    out.update(metrics.ranking_metrics(X, Y, split.train, split.test, k=10, users=users))
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            if k != "loss":
                print(f"{k:>16}: {v}")
    return 0
