#!/usr/bin/env python3
"""Deployment-shaped corpus benchmark helpers (scripts/corpus/split.sh).

  split.py split CACHE WORK          order each class by date, oldest 40 % train
  split.py send --addr H:P --rcpt A --list FILE --out FILE
                                     send messages through SMTP, one per connection
  split.py moat --results FILE --log FILE --out FILE
                                     join the SMTP outcomes with moat's decision lines
  split.py sa --out FILE FILES...    read spamc's X-Spam-Status outputs (.out files)
  split.py rspamd --scan FILE --class C >> FILE
                                     read `rspamc symbols` output
  split.py report NAME=FILE...       the table: spam recall and ham flagged per system

Per-message verdict files are TSV: class, flagged (0/1), score, verdict,
path, symbols.
"""
import email.utils
import json
import os
import re
import smtplib
import socket
import sys
import time

TRAIN_SHARE = 0.40


def header_block(data):
    end = data.find(b"\n\n")
    if end < 0:
        end = len(data)
    text = data[:end].decode("latin-1").replace("\r", "")
    # unfold
    return re.sub(r"\n[ \t]+", " ", text)


def field(head, name):
    m = re.search(r"^" + name + r":[ \t]*(.*)$", head, re.I | re.M)
    return m.group(1).strip() if m else ""


def message_date(data):
    """Epoch seconds of the Date field, else of the first Received, else 0."""
    head = header_block(data)
    for value in (field(head, "Date"),):
        if value:
            try:
                return email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    rec = field(head, "Received")
    if ";" in rec:
        try:
            return email.utils.parsedate_to_datetime(rec.rsplit(";", 1)[1].strip()).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return 0.0


def cmd_split(cache, work):
    os.makedirs(work, exist_ok=True)
    rows = []
    for cls in ("spam", "ham"):
        d = os.path.join(cache, cls)
        files = sorted(f for f in os.listdir(d) if not f.startswith("."))
        dated = []
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                dated.append((message_date(fh.read()), f, p))
        dated.sort()
        n_train = int(round(len(dated) * TRAIN_SHARE))
        for i, (t, f, p) in enumerate(dated):
            rows.append(("train" if i < n_train else "test", cls, t, p))
    with open(os.path.join(work, "split.tsv"), "w") as out:
        for r in rows:
            out.write("%s\t%s\t%d\t%s\n" % r)
    for part in ("train", "test"):
        for cls in ("spam", "ham"):
            d = os.path.join(work, "%s-%s" % (part, cls))
            os.makedirs(d, exist_ok=True)
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
            with open(os.path.join(work, "%s-%s.txt" % (part, cls)), "w") as lst:
                for r in rows:
                    if r[0] == part and r[1] == cls:
                        os.symlink(r[3], os.path.join(d, os.path.basename(r[3])))
                        lst.write(r[3] + "\n")
    for part in ("train", "test"):
        sel = [r for r in rows if r[0] == part]
        ts = [r[2] for r in sel if r[2] > 0]
        fmt = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t))
        print("%s: %d spam, %d ham, dated %s to %s" % (
            part, sum(r[1] == "spam" for r in sel), sum(r[1] == "ham" for r in sel),
            fmt(min(ts)), fmt(max(ts))))


ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def envelope_sender(data):
    head = header_block(data)
    for name in ("Return-Path", "From", "Sender"):
        m = ADDR.search(field(head, name))
        if m:
            return m.group(0)
    return "unknown@sender.invalid"


def cmd_send(addr, rcpt, listfile, outfile):
    host, port = addr.rsplit(":", 1)
    files = [l.strip() for l in open(listfile) if l.strip()]
    t0 = time.time()
    with open(outfile, "w") as out:
        for i, p in enumerate(files):
            with open(p, "rb") as fh:
                data = fh.read()
            stage, code, text, queue = "DATA", 0, "", ""
            try:
                s = smtplib.SMTP(host, int(port), local_hostname="mail.sender.example", timeout=300)
                try:
                    s.ehlo()
                    stage = "MAIL"
                    frm = envelope_sender(data)
                    code, resp = s.mail(frm, ["BODY=8BITMIME"] if any(b > 127 for b in data) else [])
                    if code == 250:
                        stage = "RCPT"
                        code, resp = s.rcpt(rcpt)
                    if code in (250, 251):
                        stage = "DATA"
                        code, resp = s.data(data)
                    text = resp.decode("latin-1", "replace")
                    m = re.search(r"queued as (\S+)", text)
                    if m:
                        queue = m.group(1)
                finally:
                    try:
                        s.quit()
                    except Exception:
                        s.close()
            except smtplib.SMTPResponseException as e:
                code, text = e.smtp_code, e.smtp_error.decode("latin-1", "replace")
            except (OSError, smtplib.SMTPException) as e:
                code, text = -1, str(e)
            out.write("%s\t%s\t%d\t%s\t%s\n" % (p, stage, code, queue, text.replace("\t", " ").replace("\n", " ")))
            if (i + 1) % 500 == 0:
                print("  sent %d/%d (%.0f msg/s)" % (i + 1, len(files), (i + 1) / (time.time() - t0)), file=sys.stderr)
    print("sent %d in %.0f s (%.1f msg/s)" % (len(files), time.time() - t0, len(files) / (time.time() - t0)), file=sys.stderr)


def cmd_moat(results, logfile, outfile):
    """Join each SMTP outcome with moat's decision line (json logs)."""
    decisions, details = {}, {}
    for line in open(logfile, errors="replace"):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("msg") == "message" and ev.get("queue"):
            decisions[ev["queue"]] = ev
        elif ev.get("msg") == "message symbols" and ev.get("queue"):
            details[ev["queue"]] = ev.get("symbols") or []
    # With the debug log, a second file (.detail.tsv) gives each message's
    # Bayes probability and its symbols with their scores, to replay
    # other score tables on: class, probability (-1: no Bayes symbol),
    # path, NAME=score ...
    detail = open(outfile[:-4] + ".detail.tsv", "w") if details else None
    # Refusals at DATA carry no queue id in the reply: their decision
    # lines (reply 5xx/4xx), in order, match the refused sends in order.
    refused = [ev for ev in (json.loads(l) for l in open(logfile, errors="replace") if l.startswith("{"))
               if ev.get("msg") == "message" and ev.get("reply", 250) != 250]
    ri = 0
    with open(outfile, "w") as out:
        for line in open(results):
            p, stage, code, queue, text = line.rstrip("\n").split("\t", 4)
            cls = "spam" if "/spam/" in os.path.realpath(p) else "ham"
            code = int(code)
            if code == 250 and queue in decisions:
                ev = decisions[queue]
                verdict = ev.get("action", "accept")
            elif stage == "DATA" and code >= 400:
                ev = refused[ri] if ri < len(refused) else {}
                ri += 1
                verdict = ev.get("action", "reject" if code >= 500 else "tempfail")
            else:
                ev = {}
                verdict = "refused-%s-%d" % (stage.lower(), code)
            flagged = 0 if verdict == "accept" else 1
            syms = ev.get("symbols") or []
            out.write("%s\t%d\t%s\t%s\t%s\t%s\n" % (cls, flagged, ev.get("score", 0), verdict, p, " ".join(syms)))
            if detail is not None:
                prob, scored = -1.0, []
                for d in details.get(queue, []):
                    m = re.match(r"(\w+)\(([-0-9.e+]+)\)(?:: (.*))?$", d)
                    if not m:
                        continue
                    scored.append("%s=%s" % (m.group(1), m.group(2)))
                    pm = re.match(r"spam probability ([0-9.]+)", m.group(3) or "")
                    if pm:
                        prob = float(pm.group(1))
                detail.write("%s\t%s\t%s\t%s\n" % (cls, prob, p, " ".join(scored)))
    if detail is not None:
        detail.close()


def cmd_sa(outfile, files, cls):
    with open(outfile, "a") as out:
        for line in open(files):
            p, status = line.rstrip("\n").split("\t", 1)
            m = re.search(r"score=(-?[0-9.]+)", status)
            score = float(m.group(1)) if m else 0.0
            tests = re.search(r"tests=(.*?)(?: autolearn=| version=|$)", status)
            flagged = 1 if status.startswith("Yes") else 0
            out.write("%s\t%d\t%s\t%s\t%s\t%s\n" % (cls, flagged, score, "tag" if flagged else "accept", p,
                                                   " ".join(t for t in (tests.group(1) if tests else "").replace(",", " ").split() if t != "none")))


def cmd_rspamd(scan, cls):
    cur = None

    def flush():
        if cur:
            flagged = 0 if cur["action"] in ("no action", "") else 1
            sys.stdout.write("%s\t%d\t%s\t%s\t%s\t%s\n" % (cls, flagged, cur["score"], cur["action"].replace(" ", "_") or "none",
                                                          cur["file"], " ".join(cur["syms"])))
    for line in open(scan, errors="replace"):
        if line.startswith("Results for file: "):
            flush()
            cur = {"file": line.split()[3], "action": "", "score": 0.0, "syms": []}
        elif cur is None:
            continue
        elif line.startswith("Action: "):
            cur["action"] = line[len("Action: "):].strip()
        elif line.startswith("Score: "):
            cur["score"] = float(line.split()[1])
        elif line.startswith("Symbol: "):
            cur["syms"].append(line.split()[1])
    flush()


def load(path):
    rows = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        rows.append({"cls": f[0], "flagged": int(f[1]), "score": float(f[2] or 0), "verdict": f[3], "path": f[4],
                     "symbols": f[5].split() if len(f) > 5 else []})
    return rows


def cmd_report(pairs):
    print("| system | spam caught | ham flagged | ham refused before DATA | spam recall at ham flagged ≤ 0.5 % (threshold on the results) | verdicts (spam / ham) |")
    print("|---|---|---|---|---|---|")
    for pair in pairs:
        name, path = pair.split("=", 1)
        rows = load(path)
        spam = [r for r in rows if r["cls"] == "spam"]
        ham = [r for r in rows if r["cls"] == "ham"]
        ts = sum(r["flagged"] for r in spam)
        th = sum(r["flagged"] for r in ham)
        early = [r for r in ham if r["verdict"].startswith("refused-")]
        # the best recall with at most 0.5 % of ham at or over a score threshold
        allowed = int(len(ham) * 0.005)
        hs = sorted((r["score"] for r in ham), reverse=True)
        thr = hs[allowed] if allowed < len(hs) else float("-inf")
        best = sum(1 for r in spam if r["score"] > thr)

        def counts(rs):
            c = {}
            for r in rs:
                v = r["verdict"] if not r["verdict"].startswith("refused-") else "refused"
                c[v] = c.get(v, 0) + 1
            return ", ".join("%s %d" % kv for kv in sorted(c.items()))
        print("| %s | %.2f %% (%d/%d) | %.2f %% (%d/%d) | %d | %.2f %% (score > %.2f) | %s / %s |" % (
            name, 100.0 * ts / max(1, len(spam)), ts, len(spam), 100.0 * th / max(1, len(ham)), th, len(ham),
            len(early), 100.0 * best / max(1, len(spam)), thr, counts(spam), counts(ham)))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]

    def opt(name, default=None):
        if name in args:
            i = args.index(name)
            v = args[i + 1]
            del args[i:i + 2]
            return v
        return default
    if cmd == "split":
        cmd_split(args[0], args[1])
    elif cmd == "send":
        cmd_send(opt("--addr"), opt("--rcpt"), opt("--list"), opt("--out"))
    elif cmd == "moat":
        cmd_moat(opt("--results"), opt("--log"), opt("--out"))
    elif cmd == "sa":
        out, cls = opt("--out"), opt("--class")
        cmd_sa(out, args[0], cls)
    elif cmd == "rspamd":
        cmd_rspamd(opt("--scan"), opt("--class"))
    elif cmd == "report":
        cmd_report(args)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
