"""`osr qos ...`: evaluate, generate, ingest and refresh QoS predictions.

The lead's `osr` CLI mounts this with `register(subparsers)`; `python -m pipelines.ops.commands.qos`
runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from pipelines.qos.models import MODELS, RW_MODELS, RWConfig

DEFAULT_MODELS = "UPCC,IPCC,UIPCC,UL-RW,SL-RW,HL-RW"


def _add_rw_options(p: argparse.ArgumentParser) -> None:
    d = RWConfig()
    g = p.add_argument_group("random-walk model parameters")
    g.add_argument("--k", type=int, default=d.k, help=f"neighbours per predicted cell (default {d.k})")
    g.add_argument("--alpha", type=float, default=d.alpha, help=f"walk continuation probability (default {d.alpha})")
    g.add_argument("--lam", type=float, default=d.lam, help=f"HL-RW weight of the user side, Eq. 20 (default {d.lam})")
    g.add_argument("--theta", type=float, default=d.theta,
                   help=f"co-invocations at which the direct similarity is fully trusted, Eq. 16 (default {d.theta})")
    g.add_argument("--gamma", type=float, default=d.gamma, help=f"significance penalty of Eq. 3/4 (default {d.gamma})")
    g.add_argument("--sigma-scale", type=float, default=d.sigma_scale,
                   help=f"distance unit of Eq. 3/4 in standard deviations (default {d.sigma_scale})")
    g.add_argument("--omega-mode", choices=["symmetric", "neighbour"], default=d.omega_mode,
                   help="how Eq. 7 combines the two nodes' weights (default symmetric)")
    g.add_argument("--no-location", action="store_true", help="switch the location weight and AS-first selection off")
    g.add_argument("--graph-top-n", type=int, default=None, help="keep only each node's N strongest graph edges")
    g.add_argument("--beta", type=float, default=d.beta,
                   help="HL-RW+MF weight of HL-RW (default: chosen on 10%% of the training cells held out)")


def _config(args) -> RWConfig:
    cfg = RWConfig()
    return replace(cfg, k=args.k, alpha=args.alpha, lam=args.lam, theta=args.theta, gamma=args.gamma,
                   sigma_scale=args.sigma_scale, omega_mode=args.omega_mode, location=not args.no_location,
                   graph_top_n=args.graph_top_n, beta=args.beta)


def cmd_eval(args) -> int:
    from pipelines.qos import data, evaluate

    d = data.load(args.matrix, args.users, args.services, args.user_index, args.service_index, metric=args.metric)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = evaluate.evaluate(d, models, args.density, repeats=args.repeats, seed=args.seed, cfg=_config(args),
                               progress=args.progress)
    result["matrix"] = str(args.matrix)
    if not args.runs:
        for m in result["models"].values():
            m.pop("runs", None)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.matrix}: {d.shape[0]} x {d.shape[1]}, density {args.density}, {args.repeats} repeats, "
              f"seed {args.seed}")
        print(f"location: {result['location']['note']}")
        print(f"{'model':<14} {'MAE':>8} {'NMAE':>8} {'seconds':>9}")
        for name, r in result["models"].items():
            print(f"{name:<14} {r['mae']:>8.4f} {r['nmae']:>8.4f} {r['seconds']:>9.2f}")
    return 0


def cmd_generate(args) -> int:
    import numpy as np

    from pipelines.qos import data, generate

    d = generate.generate(args.metric, seed=args.seed, missing=args.missing)
    path = data.write_matrix(d.values, args.out)
    print(json.dumps({"out": str(path), "shape": list(d.shape), "metric": args.metric,
                      "mean": float(np.nanmean(d.values)),
                      "users": str(generate.wsdream_dir() / "userlist.txt.gz"),
                      "services": str(generate.wsdream_dir() / "wslist.txt.gz")}))
    return 0


def cmd_ingest(args) -> int:
    from pipelines.qos import refresh

    print(json.dumps(refresh.ingest(args.matrix, args.metric, args.users, args.services, args.user_index,
                                    args.service_index, db_path=args.db)))
    return 0


def cmd_refresh(args) -> int:
    from pipelines.qos import refresh

    print(json.dumps(refresh.refresh(args.metric, args.model, k=args.k, lam=args.lam, top=args.top, db_path=args.db),
                     default=str))
    return 0


def _add_matrix_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--matrix", required=True, help="WS-DREAM-format matrix: tab-separated users x services, "
                                                   "-1 or empty = unobserved (gzip allowed)")
    p.add_argument("--users", help="userlist.txt(.gz): user locations (AS, country); without it omega = 1 on the "
                                   "user side")
    p.add_argument("--services", help="wslist.txt(.gz): service locations; without it omega = 1 on the service side")
    p.add_argument("--user-index", help="file of user-list row numbers, one per matrix row (default: row k = user k)")
    p.add_argument("--service-index", help="file of service-list row numbers, one per matrix column, e.g. "
                                           "cloudrank_services.txt (default: column k = service k)")
    p.add_argument("--metric", choices=["rt", "tp"], default="rt", help="response time (s) or throughput (kbps)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add `qos` and its subcommands to an argparse subparsers object."""
    qos = subparsers.add_parser(
        "qos", help="QoS prediction for service recommendation (location-aware random walk)",
        description="Predict the response time / throughput users would get from services they have not invoked, "
                    "with the location-aware random-walk models UL-RW, SL-RW and HL-RW and their baselines.")
    qos.set_defaults(func=lambda a: (qos.print_help(), 0)[1])
    sub = qos.add_subparsers(dest="qos_command", metavar="COMMAND")

    ev = sub.add_parser(
        "eval", help="MAE / NMAE / seconds of models on a matrix (the paper's protocol)",
        description="Keep a random share (--density) of the matrix's cells for training, predict the other observed "
                    "cells, repeat with seeds; print MAE, NMAE and wall time per model. Models: "
                    + ", ".join(MODELS) + "; any of " + ", ".join(RW_MODELS) + " also as <name>-noloc.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_matrix_options(ev)
    ev.add_argument("--density", type=float, default=0.10, help="training density (share of all cells)")
    ev.add_argument("--repeats", type=int, default=5, help="random splits")
    ev.add_argument("--seed", type=int, default=1, help="seed of the splits")
    ev.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model names")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--runs", action="store_true", help="include every repeat's figures in the JSON")
    ev.add_argument("--progress", action="store_true", help="progress lines on stderr")
    _add_rw_options(ev)
    ev.set_defaults(func=cmd_eval)

    gen = sub.add_parser("generate", help="write a synthetic full-size matrix on the real WS-DREAM locations",
                         description="Seeded 339 x 5,825 response-time or throughput matrix from distance, same-AS / "
                                     "same-country effects, service load and heavy tails, calibrated to the "
                                     "published means (0.81 s, 44.03 kbps).")
    gen.add_argument("--metric", choices=["rt", "tp"], default="rt")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--missing", type=float, default=0.0, help="share of cells left unobserved (-1)")
    gen.add_argument("--out", required=True, help="output path (.gz compresses)")
    gen.set_defaults(func=cmd_generate)

    ing = sub.add_parser("ingest", help="load a WS-DREAM-format matrix and location lists into qos.observations",
                         description="Upsert the matrix's observed cells into the store (qos schema) with the nodes' "
                                     "locations.")
    _add_matrix_options(ing)
    ing.add_argument("--db", help="store: a folder (catalog.sqlite + data/) or a catalog spec "
                                  "(default OSR_STORE_CATALOG)")
    ing.set_defaults(func=cmd_ingest)

    ref = sub.add_parser("refresh", help="gate observations, fit, write predictions and top-K recommendations",
                         description="What the qos_random_walk_refresh DAG does, in one process.")
    ref.add_argument("--metric", choices=["rt", "tp"], default="rt")
    ref.add_argument("--model", default="HL-RW", help="model name (see `osr qos eval --help`)")
    ref.add_argument("--k", type=int, default=RWConfig().k, help="neighbours per predicted cell")
    ref.add_argument("--lam", type=float, default=None, help="HL-RW lambda (default: the model default)")
    ref.add_argument("--top", type=int, default=10, help="recommendations per user")
    ref.add_argument("--db", help="store: a folder (catalog.sqlite + data/) or a catalog spec "
                                  "(default OSR_STORE_CATALOG)")
    ref.set_defaults(func=cmd_refresh)
    return qos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osr", description="OSR platform (QoS commands only)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
