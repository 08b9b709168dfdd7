"""``python -m kube_sandbox`` / ``kube-sandbox``: run the sandbox in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kube-sandbox", description="Kubernetes API emulator (dev and test tool).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6443, help="0 picks a free port")
    p.add_argument("--kubeconfig", help="where to write the kubeconfig (context kube-sandbox)")
    p.add_argument("--snapshot", help="state file: loaded at start, written periodically and on exit")
    p.add_argument("--ready-delay", type=float, default=0.5, help="seconds until simulated workloads are ready")
    p.add_argument("--rules", help="outcome rules file (YAML or JSON list, or {rules: [...]}); see kube_sandbox/rules.py")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a self-made CA (kubeconfig embeds it)")
    p.add_argument("--require-token", action="store_true", help="answer 401 unless the kubeconfig's bearer token is sent")
    p.add_argument("--service-account-dir", help="with --tls: write token, ca.crt, namespace there (in-cluster mode)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sb = Sandbox(ready_delay=args.ready_delay, snapshot=args.snapshot, host=args.host, port=args.port,
                 kubeconfig=args.kubeconfig, verbose=args.verbose, rules=args.rules, tls=args.tls,
                 require_token=args.require_token)
    try:
        sb.start()
    except OSError as exc:
        print(f"kube-sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"kube-sandbox serving {sb.url}", flush=True)
    print(f"kubeconfig: {sb.kubeconfig_path}", flush=True)
    if sb.tls:
        print(f"ca: {sb.ca_path}", flush=True)
        print(" ".join(f"{k}={v}" for k, v in sb.in_cluster_env.items()), flush=True)
        if args.service_account_dir:
            print(f"service account: {sb.write_service_account(args.service_account_dir)}", flush=True)
    stop.wait()
    sb.stop()
    print("kube-sandbox stopped" + (f", snapshot written to {sb.snapshot}" if sb.snapshot else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
