#!/usr/bin/env python3
"""Checks that the PostgreSQL migrations (schema/postgres/NNNN_*.sql) leave the same schema as
the SQLite ones (schema/NNNN_*.sql), after every prefix 1..N of them.

    tests/pg_schema_compare.py POSTGRES_URL REPO_ROOT

POSTGRES_URL names a server where the user may create databases (tests/postgres.sh start prints
one). For each N a fresh database gets 0001..N, each file in one transaction (psql -1), and an
in-memory SQLite database gets the SQLite files 0001..N; then, per table: column names and order,
types (INTEGER = bigint, TEXT = text, BLOB = bytea, REAL = double precision), NOT NULL, defaults,
rowid ids against identities, the primary key, unique constraints and unique indexes (partial
ones with their predicate), every other index by name (columns, order, predicate), foreign keys
(columns, parent, ON DELETE / ON UPDATE), CHECK constraints and triggers (timing, events, WHEN).
Also checked: the audit log's triggers refuse and allow the same statements on both; every
`ON CONFLICT(...)` target of src/store/*.rs has its unique index on both; migration 9 moves
alert rows to the same values on both; each SQLite file has its PostgreSQL form with the header.

The differences the PostgreSQL files make on purpose (their headers say why) are listed in
ACCEPTED and printed as such. Any other difference is printed and the exit status is 1.
Needs psql and Python's sqlite3 module; uses no other package.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path

HEADER = "-- PostgreSQL form of schema/{name}; keep the two equivalent."

TYPES = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea", "REAL": "double precision"}

# Deliberate differences, each described in the header of the PostgreSQL file that makes it.
ACCEPTED = {
    ("column order", "alerts"): (
        "0009: ALTER TABLE appends subject, subject_kind, subject_name where SQLite's rebuild puts them after id",
        ("subject", "subject_kind", "subject_name"),
    ),
    ("no identity", "revocation_status.cert_id"): ("0002: an INTEGER PRIMARY KEY that references a certificate is always given", None),
    ("no identity", "ocsp_cache.cert_id"): ("0002: an INTEGER PRIMARY KEY that references a certificate is always given", None),
    ("no identity", "ari_watch.cert_id"): ("0013: an INTEGER PRIMARY KEY that references a certificate is always given", None),
    ("extra trigger", "audit_log.audit_log_no_truncate"): ("0004: TRUNCATE skips row triggers; SQLite has no TRUNCATE", None),
}
# A PostgreSQL primary key is always NOT NULL; SQLite lets a non-INTEGER primary key of a rowid
# table hold NULL (0001 header). Accepted for every such column.
PK_NOT_NULL = "0001: a PostgreSQL PRIMARY KEY is NOT NULL; SQLite's non-INTEGER PRIMARY KEY of a rowid table admits NULL"


class Report:
    def __init__(self):
        self.errors = []
        self.accepted = {}

    def diff(self, where, what):
        self.errors.append(f"{where}: {what}")

    def accept(self, key, what):
        self.accepted.setdefault(key, what)


# ---------------------------------------------------------------------------------------------
# SQL text helpers


def split_literals(sql):
    """Yields (is_literal, text) pieces of `sql`: single-quoted literals apart."""
    out, i, start = [], 0, 0
    while i < len(sql):
        if sql[i] == "'":
            if start < i:
                out.append((False, sql[start:i]))
            j = i + 1
            while j < len(sql):
                if sql[j] == "'" and j + 1 < len(sql) and sql[j + 1] == "'":
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            out.append((True, sql[i : j + 1]))
            i = start = j + 1
        else:
            i += 1
    if start < len(sql):
        out.append((False, sql[start:]))
    return out


def norm_expr(expr):
    """An expression in a form both databases' texts reduce to: casts, parentheses, quotes on
    identifiers and spacing dropped, `!=` as `<>`, keywords lower-case (literals kept)."""
    if expr is None:
        return None
    # PostgreSQL shows a negative number as a cast literal: '-1'::integer.
    expr = re.sub(r"'(-?\d+(?:\.\d+)?)'::\s*(?:smallint|integer|bigint|numeric|real|double precision)\b", r"\1", expr.strip())
    # … and `x IN (v)` of one value as `x = v`.
    one = r"\(\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s*\)"
    expr = re.sub(r"\bNOT\s+IN\s*" + one, r"<> \1", expr, flags=re.I)
    expr = re.sub(r"\bIN\s*" + one, r"= \1", expr, flags=re.I)
    parts = []
    for literal, text in split_literals(expr):
        if literal:
            parts.append(text)
            continue
        text = re.sub(r"::\s*[a-z_ ]+?(\(\d+(,\d+)?\))?(\[\])?(?=[\s),\]]|$)", "", text, flags=re.I)
        text = text.replace("!=", "<>").replace('"', "").replace("(", " ").replace(")", " ")
        parts.append(re.sub(r"\s+", "", text).lower())
    s = "".join(parts)
    # PostgreSQL shows `x IN (a, b)` as `x = ANY (ARRAY[a, b])`, `NOT IN` as `<> ALL (ARRAY[…])`.
    s = re.sub(r"=anyarray\[(.*?)\]", r"in\1", s)
    return re.sub(r"<>allarray\[(.*?)\]", r"notin\1", s)


def balanced(sql, start):
    """The text inside the parentheses opening at sql[start] == '('."""
    depth, i = 0, start
    in_lit = False
    while i < len(sql):
        c = sql[i]
        if in_lit:
            if c == "'":
                in_lit = False
        elif c == "'":
            in_lit = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return sql[start + 1 : i], i
        i += 1
    raise ValueError(f"unbalanced parentheses in {sql!r}")


def split_top(text):
    parts, depth, cur, in_lit = [], 0, "", False
    for c in text:
        if in_lit:
            in_lit = c != "'"
        elif c == "'":
            in_lit = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += c
    parts.append(cur)
    return [p.strip() for p in parts]


def strip_comments(sql):
    out = []
    for literal, text in split_literals(sql):
        out.append(text if literal else re.sub(r"--[^\n]*", "", text))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# SQLite


def sqlite_schema(conn):
    tables = {}
    for (name, wr) in conn.execute(
        "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%'"
    ):
        sql = strip_comments(conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()[0])
        info = conn.execute(f"PRAGMA table_info('{name}')").fetchall()  # cid, name, type, notnull, dflt, pk
        pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        rowid_alias = None
        if not wr and len(pk) == 1:
            decl = next(r[2] for r in info if r[1] == pk[0])
            if decl.upper() == "INTEGER":
                rowid_alias = pk[0]
        columns = []
        for cid, cname, ctype, notnull, dflt, pkpos in info:
            enforced_not_null = bool(notnull) or cname == rowid_alias or (bool(wr) and bool(pkpos))
            columns.append(
                {
                    "name": cname,
                    "type": TYPES.get(ctype.upper(), f"unmapped SQLite type {ctype!r}"),
                    "notnull": enforced_not_null,
                    "default": norm_expr(dflt),
                    "identity": cname == rowid_alias,
                }
            )
        uniques, indexes = [], {}
        for _seq, iname, unique, origin, partial in conn.execute(f"PRAGMA index_list('{name}')"):
            if origin == "pk":
                continue
            cols = conn.execute(f"PRAGMA index_xinfo('{iname}')").fetchall()  # seqno, cid, name, desc, coll, key
            keys = [c for c in cols if c[5]]
            isql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (iname,)).fetchone()[0]
            exprs = None
            predicate = None
            if isql:
                isql = strip_comments(isql)
                on = re.search(r"\bON\s+\"?\w+\"?\s*\(", isql, re.I)
                inner, end = balanced(isql, on.end() - 1)
                exprs = split_top(inner)
                where = re.match(r"\s*WHERE\s+(.*?)\s*;?\s*$", isql[end + 1 :], re.I | re.S)
                predicate = norm_expr(where.group(1)) if where else None
            elements = []
            for pos, c in enumerate(keys):
                if c[1] >= 0:
                    elements.append(c[2])
                else:
                    e = re.sub(r"\s+(ASC|DESC)\s*$", "", exprs[pos], flags=re.I) if exprs else "?"
                    elements.append(norm_expr(e))
            entry = {"unique": bool(unique), "columns": tuple(elements), "desc": tuple(bool(c[3]) for c in keys), "predicate": predicate}
            if origin == "u":
                uniques.append(entry)
            else:
                indexes[iname] = entry
        fks = {}
        for fid, _seq, parent, frm, to, on_update, on_delete, _match in conn.execute(f"PRAGMA foreign_key_list('{name}')"):
            fks.setdefault(fid, {"from": [], "parent": parent, "to": [], "on_update": on_update, "on_delete": on_delete})
            fks[fid]["from"].append(frm)
            fks[fid]["to"].append(to)
        deferred = bool(re.search(r"DEFERRABLE\s+INITIALLY\s+DEFERRED", sql, re.I))
        fk_set = set()
        for fk in fks.values():
            to = fk["to"]
            if any(t is None for t in to):  # REFERENCES parent, without columns: its primary key
                to = [r[1] for r in sorted((r for r in conn.execute(f"PRAGMA table_info('{fk['parent']}')") if r[5]), key=lambda r: r[5])]
            fk_set.add((tuple(fk["from"]), fk["parent"], tuple(to), fk["on_update"], fk["on_delete"], deferred))
        checks = []
        for m in re.finditer(r"\bCHECK\s*\(", sql, re.I):
            if not inside_literal(sql, m.start()):
                checks.append(norm_expr(balanced(sql, m.end() - 1)[0]))
        tables[name] = {
            "columns": columns,
            "pk": pk,
            "uniques": uniques,
            "indexes": indexes,
            "fks": fk_set,
            "checks": sorted(checks),
            "triggers": {},
        }
    for tname, table, sql in conn.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"):
        sql = strip_comments(sql)
        m = re.match(
            r"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)\"?\s+"
            r"(BEFORE|AFTER|INSTEAD\s+OF)?\s*(DELETE|INSERT|UPDATE)(?:\s+OF\s+(.*?))?\s+ON\s+\"?(\w+)\"?\s+"
            r"(?:FOR\s+EACH\s+ROW\s+)?(?:WHEN\s+(.*?)\s+)?BEGIN\b",
            sql,
            re.I | re.S,
        )
        if not m:
            raise ValueError(f"cannot read trigger {tname}: {sql}")
        timing = re.sub(r"\s+", " ", (m.group(2) or "BEFORE").upper())
        of = tuple(sorted(c.strip().strip('"') for c in m.group(4).split(","))) if m.group(4) else ()
        tables[table]["triggers"][tname] = {
            "timing": timing,
            "events": (m.group(3).upper(),),
            "of": of,
            "level": "ROW",
            "when": norm_expr(m.group(6)),
        }
    views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    return tables, views


def inside_literal(sql, pos):
    return sql[:pos].count("'") % 2 == 1


# ---------------------------------------------------------------------------------------------
# PostgreSQL, through psql


class Pg:
    def __init__(self, url):
        self.url = url

    def with_db(self, db):
        u = urllib.parse.urlsplit(self.url)
        return Pg(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment)))

    def run(self, sql, check=True):
        p = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", self.url, "-c", sql],
            capture_output=True,
            text=True,
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"psql: {sql[:200]}: {p.stderr.strip()}")
        return p

    def json(self, sql):
        out = self.run(f"SELECT COALESCE(json_agg(q), '[]') FROM ({sql}) q").stdout
        return json.loads(out)

    def apply(self, path):
        p = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", self.url, "-f", str(path)], capture_output=True, text=True
        )
        if p.returncode != 0:
            raise RuntimeError(f"{path.name} failed on PostgreSQL: {p.stderr.strip()}")


FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def pg_schema(pg):
    tables = {}
    for r in pg.json(
        """SELECT c.relname AS t, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
                  pg_get_expr(d.adbin, d.adrelid) AS dflt, a.attidentity AS ident, a.attgenerated AS gen
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
           LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY c.relname, a.attnum"""
    ):
        t = tables.setdefault(r["t"], {"columns": [], "pk": (), "uniques": [], "indexes": {}, "fks": set(), "checks": [], "triggers": {}})
        t["columns"].append(
            {
                "name": r["name"],
                "type": r["type"],
                "notnull": r["notnull"],
                "default": norm_expr(r["dflt"]),
                "identity": r["ident"] == "d",
                "identity_kind": r["ident"],
                "generated": r["gen"],
            }
        )
    for r in pg.json(
        """SELECT tc.relname AS t, ic.relname AS name, i.indisunique AS uniq, i.indisprimary AS prim,
                  array(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k) AS cols,
                  array(SELECT (i.indoption[k - 1] & 1) = 1 FROM generate_series(1, i.indnkeyatts) k ORDER BY k) AS descs,
                  pg_get_expr(i.indpred, i.indrelid, true) AS pred,
                  (SELECT con.contype FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                     AND con.contype IN ('p', 'u')) AS contype
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
           WHERE tc.relnamespace = 'public'::regnamespace"""
    ):
        t = tables[r["t"]]
        entry = {
            "unique": r["uniq"],
            "columns": tuple(c if re.fullmatch(r"\w+", c) else norm_expr(c) for c in r["cols"]),
            "desc": tuple(r["descs"]),
            "predicate": norm_expr(r["pred"]),
        }
        if r["prim"]:
            t["pk"] = entry["columns"]
        elif r["contype"] == "u":
            t["uniques"].append(entry)
        else:
            t["indexes"][r["name"]] = entry
    for r in pg.json(
        """SELECT c.relname AS t, con.contype AS kind, pg_get_constraintdef(con.oid, true) AS def,
                  array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
                  pc.relname AS parent,
                  array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS pcols,
                  con.confupdtype AS upd, con.confdeltype AS del, con.condeferrable AS deferrable, con.condeferred AS deferred
           FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid LEFT JOIN pg_class pc ON pc.oid = con.confrelid
           WHERE c.relnamespace = 'public'::regnamespace AND con.contype IN ('f', 'c')"""
    ):
        t = tables[r["t"]]
        if r["kind"] == "f":
            t["fks"].add((tuple(r["cols"]), r["parent"], tuple(r["pcols"]), FK_ACTIONS[r["upd"]], FK_ACTIONS[r["del"]], r["deferred"]))
            if r["deferrable"] and not r["deferred"]:
                t["fks"].add(("DEFERRABLE INITIALLY IMMEDIATE", r["def"]))
        else:
            m = re.match(r"CHECK \((.*)\)( NOT VALID)?$", r["def"], re.S)
            t["checks"].append(norm_expr(m.group(1)) if m else r["def"])
    for t in tables.values():
        t["checks"].sort()
    for r in pg.json(
        """SELECT c.relname AS t, tg.tgname AS name, tg.tgtype AS type, pg_get_triggerdef(tg.oid, true) AS def,
                  array(SELECT a.attname FROM unnest(tg.tgattr::int2[]) n JOIN pg_attribute a ON a.attrelid = tg.tgrelid AND a.attnum = n) AS of
           FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
           WHERE NOT tg.tgisinternal AND c.relnamespace = 'public'::regnamespace"""
    ):
        ty = r["type"]
        timing = "INSTEAD OF" if ty & 64 else ("BEFORE" if ty & 2 else "AFTER")
        events = tuple(e for bit, e in ((4, "INSERT"), (8, "DELETE"), (16, "UPDATE"), (32, "TRUNCATE")) if ty & bit)
        when = re.search(r"\bWHEN \((.*)\) EXECUTE ", r["def"], re.S)
        tables[r["t"]]["triggers"][r["name"]] = {
            "timing": timing,
            "events": events,
            "of": tuple(sorted(r["of"])),
            "level": "ROW" if ty & 1 else "STATEMENT",
            "when": norm_expr(when.group(1)) if when else None,
        }
    views = {r["relname"] for r in pg.json("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('v', 'm')")}
    return tables, views


# ---------------------------------------------------------------------------------------------
# Comparison


def compare(where, lite, pgs, report):
    lite_tables, lite_views = lite
    pg_tables, pg_views = pgs
    for v in sorted(lite_views ^ pg_views):
        report.diff(where, f"view {v} exists in {'SQLite' if v in lite_views else 'PostgreSQL'} only")
    for t in sorted(set(lite_tables) ^ set(pg_tables)):
        report.diff(where, f"table {t} exists in {'SQLite' if t in lite_tables else 'PostgreSQL'} only")
    for name in sorted(set(lite_tables) & set(pg_tables)):
        compare_table(f"{where} {name}", name, lite_tables[name], pg_tables[name], report)


def compare_table(where, name, s, p, report):
    s_cols = {c["name"]: c for c in s["columns"]}
    p_cols = {c["name"]: c for c in p["columns"]}
    for c in [c for c in s_cols if c not in p_cols]:
        report.diff(where, f"column {c} missing in PostgreSQL")
    for c in [c for c in p_cols if c not in s_cols]:
        report.diff(where, f"column {c} exists in PostgreSQL only")
    s_order = [c["name"] for c in s["columns"] if c["name"] in p_cols]
    p_order = [c["name"] for c in p["columns"] if c["name"] in s_cols]
    if s_order != p_order:
        reason, moved = ACCEPTED.get(("column order", name), (None, None))
        if moved and [c for c in s_order if c not in moved] + list(moved) == p_order:
            report.accept(("column order", name), f"{name}: columns {', '.join(moved)} last ({reason})")
        else:
            report.diff(where, f"column order: SQLite {s_order}, PostgreSQL {p_order}")
    for cname in [c for c in s_order]:
        sc, pc = s_cols[cname], p_cols[cname]
        if sc["type"] != pc["type"]:
            report.diff(where, f"column {cname}: type {pc['type']} in PostgreSQL, expected {sc['type']}")
        if sc["notnull"] != pc["notnull"]:
            if pc["notnull"] and cname in p["pk"] and cname in s["pk"]:
                report.accept(("pk not null", f"{name}.{cname}"), f"{name}.{cname} NOT NULL ({PK_NOT_NULL})")
            else:
                report.diff(where, f"column {cname}: NOT NULL {sc['notnull']} in SQLite, {pc['notnull']} in PostgreSQL")
        if sc["default"] != pc["default"]:
            report.diff(where, f"column {cname}: DEFAULT {sc['default']!r} in SQLite, {pc['default']!r} in PostgreSQL")
        if pc.get("identity_kind") == "a":
            report.diff(where, f"column {cname}: GENERATED ALWAYS (a store copy cannot insert explicit ids): use BY DEFAULT")
        if pc.get("generated"):
            report.diff(where, f"column {cname}: a generated column in PostgreSQL")
        if sc["identity"] != pc["identity"]:
            key = ("no identity", f"{name}.{cname}")
            if sc["identity"] and key in ACCEPTED:
                report.accept(key, f"{name}.{cname} is no identity ({ACCEPTED[key][0]})")
            elif sc["identity"]:
                report.diff(where, f"column {cname}: SQLite's rowid alias (INTEGER PRIMARY KEY) is no identity in PostgreSQL")
            else:
                report.diff(where, f"column {cname}: an identity in PostgreSQL, not a rowid alias in SQLite")
    if s["pk"] != p["pk"]:
        report.diff(where, f"primary key {s['pk']} in SQLite, {p['pk']} in PostgreSQL")

    def key(e):
        return (e["columns"], e["desc"], e["predicate"])

    s_u = sorted(key(e) for e in s["uniques"])
    p_u = sorted(key(e) for e in p["uniques"])
    if s_u != p_u:
        report.diff(where, f"UNIQUE constraints {s_u} in SQLite, {p_u} in PostgreSQL")
    for iname in sorted(set(s["indexes"]) | set(p["indexes"])):
        si, pi = s["indexes"].get(iname), p["indexes"].get(iname)
        if si is None or pi is None:
            report.diff(where, f"index {iname} exists in {'SQLite' if si else 'PostgreSQL'} only ({si or pi})")
        elif si != pi:
            report.diff(where, f"index {iname}: {si} in SQLite, {pi} in PostgreSQL")
    for fk in sorted(s["fks"] - p["fks"], key=str):
        report.diff(where, f"foreign key {fk} missing in PostgreSQL")
    for fk in sorted(p["fks"] - s["fks"], key=str):
        report.diff(where, f"foreign key {fk} exists in PostgreSQL only")
    if s["checks"] != p["checks"]:
        report.diff(where, f"CHECK constraints {s['checks']} in SQLite, {p['checks']} in PostgreSQL")
    for tname in sorted(set(s["triggers"]) | set(p["triggers"])):
        st, pt = s["triggers"].get(tname), p["triggers"].get(tname)
        if st is None:
            k = ("extra trigger", f"{name}.{tname}")
            if k in ACCEPTED:
                report.accept(k, f"trigger {name}.{tname} ({ACCEPTED[k][0]})")
            else:
                report.diff(where, f"trigger {tname} exists in PostgreSQL only")
        elif pt is None:
            report.diff(where, f"trigger {tname} missing in PostgreSQL")
        elif st != pt:
            report.diff(where, f"trigger {tname}: {st} in SQLite, {pt} in PostgreSQL")


# ---------------------------------------------------------------------------------------------
# Behaviour and data checks


def audit_trigger_behaviour(lite, pg, report, where):
    """The same statements refused and allowed on both. Returns lines for the summary."""
    row = "INSERT INTO audit_log (id, at, action, actor, detail, prev_hash, hash) VALUES ({id}, 1, 'scan', 'cli', '{{}}', '', 'h{id}')"
    statements = [
        ("INSERT", row.format(id=1), True),
        ("UPDATE one row", "UPDATE audit_log SET detail = '[]' WHERE id = 1", False),
        ("UPDATE no row", "UPDATE audit_log SET detail = '[]' WHERE id = 999", True),
        ("DELETE one row", "DELETE FROM audit_log WHERE id = 1", False),
        ("DELETE all rows", "DELETE FROM audit_log", False),
        ("DELETE no row", "DELETE FROM audit_log WHERE id = 999", True),
        ("INSERT another", row.format(id=2), True),
    ]
    lines = []
    for label, sql, allowed in statements:
        try:
            lite.execute(sql)
            s = "allowed"
        except sqlite3.DatabaseError as e:
            s = f"refused ({type(e).__name__}: {e})"
        pg_out = pg_outcome(pg.run(sql, check=False))
        ok = s.startswith("allowed") == pg_out.startswith("allowed") == allowed
        if not allowed and "the audit log is append-only" not in pg_out + s:
            ok = False
        lines.append(f"  {label:<16} SQLite: {s:<68} PostgreSQL: {pg_out}")
        if not ok:
            report.diff(where, f"audit_log {label}: expected {'allowed' if allowed else 'refused'}; SQLite {s}; PostgreSQL {pg_out}")
    pg_out = pg_outcome(pg.run("TRUNCATE audit_log", check=False))
    lines.append(f"  {'TRUNCATE':<16} SQLite: {'(no TRUNCATE)':<68} PostgreSQL: {pg_out}")
    if pg_out == "allowed":
        report.diff(where, "audit_log TRUNCATE allowed in PostgreSQL")
    counts = (lite.execute("SELECT count(*) FROM audit_log").fetchone()[0], int(pg.run("SELECT count(*) FROM audit_log").stdout))
    lines.append(f"  rows left        SQLite: {counts[0]:<68} PostgreSQL: {counts[1]}")
    if counts != (2, 2):
        report.diff(where, f"audit_log rows after the statements: {counts}, expected 2 on both")
    return lines


def pg_outcome(p):
    if p.returncode == 0:
        return "allowed"
    first = p.stderr.strip().splitlines()[0] if p.stderr.strip() else f"exit {p.returncode}"
    return "refused (" + re.sub(r"^ERROR:\s+", "", first) + ")"


def conflict_targets(root):
    """(file:line, table, columns) of every INSERT … ON CONFLICT(columns) in src/store."""
    out = []
    for path in sorted((root / "src" / "store").glob("*.rs")):
        text = path.read_text()
        for m in re.finditer(r"INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", text, re.I):
            statement = re.match(r'(?:[^"\\]|\\.)*', text[m.end() :]).group(0)  # to the end of the Rust string
            c = re.search(r"ON\s+CONFLICT\s*\(([^)]*)\)", statement, re.I)
            if c:
                line = text.count("\n", 0, m.end() + c.start()) + 1
                out.append((f"{path.relative_to(root)}:{line}", m.group(1), tuple(sorted(x.strip() for x in c.group(1).split(",")))))
    return out


def check_conflict_targets(root, lite, pgs, report, where):
    targets = conflict_targets(root)
    for at, table, cols in targets:
        for side, (tables, _views) in (("SQLite", lite), ("PostgreSQL", pgs)):
            t = tables.get(table)
            arbiters = []
            if t:
                arbiters.append(tuple(sorted(t["pk"])))
                arbiters += [tuple(sorted(e["columns"])) for e in t["uniques"] if e["predicate"] is None]
                arbiters += [tuple(sorted(e["columns"])) for e in t["indexes"].values() if e["unique"] and e["predicate"] is None]
            if cols not in arbiters:
                report.diff(where, f"{at}: ON CONFLICT({', '.join(cols)}) on {table} has no unique index in {side}")
    return len(targets)


SEED_8 = [
    "INSERT INTO certificates (id, fingerprint, subject, issuer, common_name, serial, not_before, not_after, spki_sha256, key_algorithm, "
    "signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls, self_issued, warnings, der, first_seen) "
    "VALUES (1, '{fp1}', 'CN=subject1', 'CN=CA', 'www.example.net', '01', 0, 100, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', "
    "'[]', '[]', '[]', 0, '[]', {blob}, 0)",
    "INSERT INTO certificates (id, fingerprint, subject, issuer, common_name, serial, not_before, not_after, spki_sha256, key_algorithm, "
    "signature_algorithm, is_ca, key_usage, ext_key_usage, sans, ocsp_urls, ca_issuers_urls, crl_urls, self_issued, warnings, der, first_seen) "
    "VALUES (2, '{fp2}', 'CN=subject2', 'CN=CA', NULL, '02', 0, 100, 'spki', 'EC', 'ecdsa-with-SHA256', 0, '[]', '[]', '[]', "
    "'[]', '[]', '[]', 0, '[]', {blob}, 0)",
] + [
    f"INSERT INTO alerts (id, cert_id, kind, severity, state, reason, action, opened_at, notifications, routes_notified, seq, acked_by) "
    f"VALUES ({i}, {c}, 'expiring', 'warning', '{s}', 'r', 'a', 10, 2, '[[\"mail\",10]]', 3, 'ops')"
    for i, c, s in ((7, 1, "resolved"), (9, 1, "firing"), (12, 2, "acknowledged"))
] + [
    f"INSERT INTO outbox (id, key, alert_id, route, receiver, event, severity, payload, created_at, next_attempt_at) "
    f"VALUES ({i}, 'k{i}', {a}, 'mail', 'ops', 'firing', 'warning', '{{}}', 10, 10)"
    for i, a in ((1, "7"), (2, "9"), (3, "12"), (4, "NULL"))
] + [
    "INSERT INTO silences (id, fingerprint, reason, created_by, created_at, expires_at) VALUES (1, 'aa', 'r', 'ops', 0, 99)",
]

AFTER_9 = {
    "alerts": "SELECT id, subject, subject_kind, subject_name, cert_id, kind, severity, state, reason, action, opened_at, last_notified_at, "
    "notifications, routes_notified, escalated_at, acked_at, acked_by, ack_note, resolved_at, seq FROM alerts",
    "outbox": "SELECT id, key, alert_id FROM outbox",
    "silences": "SELECT id, fingerprint, subject, reason, expires_at FROM silences",
}


def migration_9_data(root, lite_files, pg_files, admin, report):
    """Alerts stored at version 8 come out of 9..last with the same values on both."""
    lite = sqlite3.connect(":memory:")
    db = f"certvigil_schema_cmp_{os.getpid()}_data"
    admin.run(f'DROP DATABASE IF EXISTS "{db}"')
    admin.run(f'CREATE DATABASE "{db}"')
    pg = admin.with_db(db)
    try:
        for f in lite_files[:8]:
            lite.executescript(f.read_text())
        for f in pg_files[:8]:
            pg.apply(f)
        fp1, fp2 = "AB" * 32, "cd" * 32  # upper-case hex: the migration lower-cases it
        for sql in SEED_8:
            sql = sql.replace("{fp1}", fp1).replace("{fp2}", fp2)
            lite.execute(sql.replace("{blob}", "x'00'"))
            pg.run(sql.replace("{blob}", "'\\x00'::bytea"))
        lite.commit()
        for f in lite_files[8:]:
            lite.executescript(f.read_text())
        for f in pg_files[8:]:
            pg.apply(f)
        rows = 0
        for table, sql in AFTER_9.items():
            s = [list(r) for r in lite.execute(sql + " ORDER BY id")]
            p = pg.json(sql)
            p = sorted(([r[k] for k in r] for r in p), key=lambda r: r[0])
            rows += len(s)
            if s != p:
                report.diff(f"migration 9 data ({table})", f"SQLite {s}, PostgreSQL {p}")
        return rows
    finally:
        admin.run(f'DROP DATABASE IF EXISTS "{db}"', check=False)


# ---------------------------------------------------------------------------------------------


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    admin = Pg(sys.argv[1])
    root = Path(sys.argv[2]).resolve()
    report = Report()

    lite_files = sorted(p for p in (root / "schema").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    pg_files = sorted(p for p in (root / "schema" / "postgres").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    lite_names, pg_names = [p.name for p in lite_files], [p.name for p in pg_files]
    if lite_names != pg_names:
        report.diff("files", f"schema/ has {lite_names}, schema/postgres/ has {pg_names}")
    for p in pg_files:
        text = p.read_text()
        if not text.startswith(HEADER.format(name=p.name)):
            report.diff(p.name, f"does not start with {HEADER.format(name=p.name)!r}")
        # Function bodies ($$ … $$) have BEGIN and END of their own.
        code = re.sub(r"\$(\w*)\$.*?\$\1\$", "", strip_comments(text), flags=re.S)
        lite = root / "schema" / p.name
        lite_code = strip_comments(lite.read_text()) if lite.exists() else ""
        if re.search(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK)\b[^;]*;", code, re.I | re.M):
            report.diff(p.name, "has a transaction statement (each file runs inside one transaction)")
        if re.search(r"user_version|schema_version", code, re.I):
            report.diff(p.name, "keeps version bookkeeping (the store does that)")
        if re.search(r"IF\s+NOT\s+EXISTS", code, re.I) and not re.search(r"IF\s+NOT\s+EXISTS", lite_code, re.I):
            report.diff(p.name, "says IF NOT EXISTS where the SQLite file does not")
    count = min(len(lite_files), len(pg_files))
    if lite_names[:count] != pg_names[:count]:
        count = 0

    pid = os.getpid()
    summary = []
    last = None
    trig_lines = []
    for n in range(1, count + 1):
        db = f"certvigil_schema_cmp_{pid}_{n}"
        admin.run(f'DROP DATABASE IF EXISTS "{db}"')
        admin.run(f'CREATE DATABASE "{db}"')
        pg = admin.with_db(db)
        try:
            lite = sqlite3.connect(":memory:")
            for f in lite_files[:n]:
                lite.executescript(f.read_text())
            for f in pg_files[:n]:
                pg.apply(f)
            where = f"after {pg_names[n - 1]}"
            errors_before = len(report.errors)
            ls, ps = sqlite_schema(lite), pg_schema(pg)
            compare(where, ls, ps, report)
            extra = ""
            if "audit_log" in ls[0]:
                trig_lines = audit_trigger_behaviour(lite, pg, report, where)
                extra = ", audit log triggers behave alike"
            status = "same" if len(report.errors) == errors_before else "DIFFERENT"
            summary.append(f"0001..{n:04d}: {status} ({len(ls[0])} tables, {sum(len(t['indexes']) for t in ls[0].values())} named indexes{extra})")
            last = (ls, ps)
        finally:
            admin.run(f'DROP DATABASE IF EXISTS "{db}"', check=False)

    if last:
        n_targets = check_conflict_targets(root, last[0], last[1], report, "ON CONFLICT targets")
        summary.append(f"ON CONFLICT targets in src/store: {n_targets}, each with a unique index on both")
    if count >= 9:
        rows = migration_9_data(root, lite_files, pg_files, admin, report)
        summary.append(f"migration 9 data: {rows} rows (alerts, outbox, silences) alike after 0009..{count:04d}")

    print("\n".join(summary))
    if trig_lines:
        print("audit log statements, after the last migration:")
        print("\n".join(trig_lines))
    if report.accepted:
        print("accepted differences (each explained in its schema/postgres header):")
        for what in report.accepted.values():
            print(f"  {what}")
    if report.errors:
        print(f"{len(report.errors)} difference(s):")
        for e in report.errors:
            print(f"  {e}")
        sys.exit(1)
    print("no other difference")


if __name__ == "__main__":
    main()
