"""``repmatch references``: Nyström references (and real floors) from a feature store."""

from __future__ import annotations

import argparse
import warnings

from ._args import AUTO, add_common, path_arg, print_json, print_outputs, resolve_device, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "references",
        help="build one Nystrom reference per encoder of a feature store, and the real floors",
        description="Freeze the reference side of iRDM once: for each encoder of --features, "
        "k-means landmarks and the Nystrom mean embedding of the whole store (read shard by "
        "shard), one per kernel scale, written under --out with references.json. With --val, "
        "also the controller's real floors: the same loss on real validation features in "
        "batches of --floor-batch-size (use the generator's batch size); it warns when the "
        "validation set is too small for a reliable floor.",
    )
    p.add_argument("--features", required=True, type=path_arg, metavar="STORE", help="training feature store (repmatch features --out)")
    p.add_argument("--val", metavar="STORE", type=path_arg, default=None, help="validation feature store, for the real floors")
    p.add_argument("--out", required=True, type=path_arg, help="output directory")
    p.add_argument("--encoders", default=None, help="comma-separated subset of the store's encoders (default: all)")
    # The default is the library's (repmatch.compare.DEFAULT_NUM_LANDMARKS), read when the verb
    # runs: building the parser must not import torch.
    p.add_argument("--num-landmarks", type=int, default=None,
                   help="landmarks per encoder (default 4096, the library's; capped at the pool size)")
    p.add_argument("--bandwidth-scale", type=float, nargs="+", default=[1.0], metavar="S",
                   help="kernel bandwidths as multiples of the median heuristic; several give a "
                   "multi-scale kernel (default 1.0)")
    p.add_argument("--condition", choices=["none", "class", "text"], default="none",
                   help="class: joint image-class features phi(x) + beta*onehot(c) from the store's "
                   "labels (eq. 4); text: phi(x) + beta*text(caption) with --captions; none: the "
                   "image marginal (default)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the condition embedding (default 1)")
    p.add_argument("--captions", default=None, type=path_arg, metavar="FILE",
                   help="--condition text: captions of the --features images (.csv or .jsonl with "
                   "'file' and 'caption'; file = path relative to the image folder)")
    p.add_argument("--val-captions", default=None, type=path_arg, metavar="FILE", help="--condition text: captions of the --val images")
    p.add_argument("--text-encoder", default="minilm_l6", help="--condition text: the text encoder (default minilm_l6)")
    p.add_argument("--floor-batch-size", type=int, default=256, help="validation batch size of the floors (default 256)")
    p.add_argument("--kmeans-iters", type=int, default=10, help="Lloyd iterations (default 10)")
    add_common(p, device=AUTO, seed="the landmarks' k-means and the median-heuristic subsamples",
               dry_run="the resolved settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..features import FeatureStore
    from ..compare import DEFAULT_NUM_LANDMARKS
    from ..references import (
        ClassCondition,
        TextCondition,
        build_reference_dir,
        embed_captions,
        store_captions,
    )

    device = args.device if args.dry_run else resolve_device(args.device)
    num_landmarks = DEFAULT_NUM_LANDMARKS if args.num_landmarks is None else args.num_landmarks
    store = FeatureStore(args.features)
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()] if args.encoders else None
    condition: ClassCondition | TextCondition | None = None
    conditions = val_conditions = captions = None
    if args.condition == "class":
        if store.num_classes < 1:
            raise ValueError(f"--condition class: the store {args.features} has no labels")
        condition = ClassCondition(num_classes=store.num_classes, beta=args.beta)
    elif args.condition == "text" and not args.dry_run:
        if args.captions is None or (args.val is not None and args.val_captions is None):
            raise ValueError("--condition text needs --captions (and --val-captions with --val)")
        captions = store_captions(store, args.captions)
        conditions, text = embed_captions(captions, args.text_encoder, device=device)
        condition = dataclasses.replace(text, beta=args.beta)
        if args.val is not None:
            val_captions = store_captions(FeatureStore(args.val), args.val_captions)
            val_conditions, _ = embed_captions(val_captions, args.text_encoder, device=device)
    settings = {
        "features": args.features, "val": args.val, "out": args.out,
        "encoders": encoders or list(store.names), "num_landmarks": num_landmarks,
        "bandwidth_scale": args.bandwidth_scale, "condition": args.condition, "beta": args.beta,
        "captions": args.captions, "val_captions": args.val_captions, "text_encoder": args.text_encoder,
        "floor_batch_size": args.floor_batch_size, "seed": args.seed,
        "kmeans_iters": args.kmeans_iters, "device": device,
    }
    if args.dry_run:
        return print_json(settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refs = build_reference_dir(
            args.features, args.out, val=args.val, encoders=encoders, condition=condition,
            conditions=conditions, val_conditions=val_conditions, captions=captions,
            num_landmarks=num_landmarks, bandwidth_scale=tuple(args.bandwidth_scale),
            floor_batch_size=args.floor_batch_size, seed=args.seed,
            kmeans_iters=args.kmeans_iters, device=device, progress=show_progress(args),
        )
    for w in caught:
        print(f"warning: {w.message}")
    floors = refs.floors(refs.encoders)
    for name in refs.encoders:
        entry = refs.manifest["encoders"][name]
        floor = "" if floors is None else f", floor {floors[name]:.4g}"
        print(f"{name}: {entry['landmarks']} landmarks over {entry['pool']} rows, "
              f"bandwidths {[round(b, 4) for b in entry['bandwidths']]}{floor}")
    print_outputs(("references", args.out))
    return 0
