"""`osr propensity`: compare the propensity models on the synthetic coupon data (AUC, log-loss)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> argparse.ArgumentParser:
    """Add `propensity` and its subcommands to an argparse subparsers object."""
    prop = subparsers.add_parser(
        "propensity", help="propensity models E(item | state): LightGBM, SGD logistic, kNN context",
        description="Classifiers of redemption / purchase propensity from the state and item attributes.")
    prop.set_defaults(func=lambda a: (prop.print_help(), 0)[1])
    sub = prop.add_subparsers(dest="propensity_command", metavar="COMMAND")
    cmp_ = sub.add_parser(
        "compare", help="AUC and log-loss of each model on a hold-out of seeded coupon data",
        description="Generate the seeded synthetic coupon dataset (time of day, distance band, category, handset, "
                    "offer type -> redeemed), hold out a share, fit LightGBM, the mini-batch SGD logistic model and "
                    "the kNN context classifier, and print each one's AUC and log-loss next to the Bayes-optimal "
                    "figures of the true probabilities.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cmp_.add_argument("--n", type=int, default=20_000, help="rows generated")
    cmp_.add_argument("--seed", type=int, default=0, help="seed of the data, split and models")
    cmp_.add_argument("--test-fraction", type=float, default=0.25, help="hold-out share")
    cmp_.add_argument("--dask", action="store_true",
                      help="train LightGBM and the SGD model on Dask (OSR_DASK_SCHEDULER or a LocalCluster)")
    cmp_.add_argument("--json", action="store_true", help="print one JSON object")
    cmp_.set_defaults(func=cmd_compare)
    return prop


def cmd_compare(args) -> int:
    from pipelines.propensity.evaluate import compare_on_coupons

    if args.dask:
        from pipelines.recsys.cluster import dask_client

        with dask_client() as client:
            res = compare_on_coupons(args.n, args.seed, client=client, test_fraction=args.test_fraction)
    else:
        res = compare_on_coupons(args.n, args.seed, test_fraction=args.test_fraction)
    if args.json:
        print(json.dumps(res))
    else:
        for name, r in res.items():
            if name.startswith("_"):
                continue
            print(f"{name:>14}: AUC {r['auc']:.4f}  log-loss {r['log_loss']:.4f}"
                  + (f"  fit {r['fit_s']:.2f} s" if "fit_s" in r else ""))
        print(f"{'data':>14}: {res['_data']}")
    return 0
