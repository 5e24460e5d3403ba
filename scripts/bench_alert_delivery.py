"""How long an alert takes from Alertmanager's API to the chat channel (and to the mail relay).

Runs Debian's real Alertmanager (`prometheus-alertmanager`) on the rendered config, against the
test suite's fake Mattermost and SMTP sink, all on 127.0.0.1. Each run posts a new critical alert
(a new group, so `group_wait` applies) and times POST -> message received. Expect about
group_wait plus a few milliseconds. A measurement, not a test:

    .venv/bin/python scripts/bench_alert_delivery.py --runs 10 --group-wait 1s
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config.alertmanager import AlertmanagerSettings, ChatReceiver, EmailReceiver, Smtp, Timing  # noqa: E402
from tests.components.alert_delivery import alert, running_alertmanager, smtp_sink  # noqa: E402
from tests.components.fake_chat import fake_chat  # noqa: E402

WAIT_SECONDS = 60


def summary(label: str, seconds: list[float]) -> str:
    return (f"{label:5} min {min(seconds):.3f}s  median {statistics.median(seconds):.3f}s  "
            f"max {max(seconds):.3f}s  (n={len(seconds)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--group-wait", default="1s", help="Prometheus duration, e.g. 1s, 500ms, 30s")
    args = parser.parse_args()
    # aiosmtpd 1.4 logs a deprecation warning of its own on every successful AUTH.
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as workdir, smtp_sink("bench", "bench-password") as relay, \
            fake_chat(channels=("alerts",)) as chat:
        settings = AlertmanagerSettings(
            receivers=(ChatReceiver("mattermost", "alerts", hook_url=chat.hook_url("benchhook")),
                       EmailReceiver("email", ("ops@example.com",))),
            smtp=Smtp(relay.smarthost, "ceres@example.com", username="bench", password="bench-password",
                      require_tls=False),
            timing=Timing(group_wait=args.group_wait, group_interval="1m", repeat_interval="1h"),
        )
        with running_alertmanager(settings, Path(workdir)) as alertmanager:
            to_chat: list[float] = []
            to_mail: list[float] = []
            for run in range(args.runs):
                name = f"Bench{run}"
                posted = time.monotonic()
                alertmanager.post(alert(name, "critical", summary=f"bench run {run}"))
                message = chat.wait_for(lambda m: name in m.content, channel="alerts", timeout=WAIT_SECONDS)
                mail = relay.wait_for(lambda m: name in m.subject, timeout=WAIT_SECONDS)
                to_chat.append(message.received_at - posted)
                to_mail.append(mail.received_at - posted)
    print(f"Alertmanager {settings.timing.group_wait} group_wait, POST /api/v2/alerts -> received:")
    print(summary("chat", to_chat))
    print(summary("mail", to_mail))


if __name__ == "__main__":
    main()
