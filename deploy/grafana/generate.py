#!/usr/bin/env python3
"""Writes the wirelens Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are what Grafana loads and what tests/live_prometheus.rs evaluates; this script
is how they are made, so that every panel follows the same conventions:

- one datasource variable (`datasource`, type prometheus) used by every panel;
- query variables filled with `label_values(...)`, multi-select with "All" (Grafana then
  substitutes a regex alternation of every value, hence `=~` in every selector);
- time series use `[$__rate_interval]`, tables are instant queries over `[$__range]`;
- an error ratio is `(errors or all * 0) / all`, so a series without errors shows 0, not
  "No data";
- quantiles come from the OpenTelemetry-bucketed histograms with `histogram_quantile`.

Edit this file, run `python3 deploy/grafana/generate.py`, commit both.
"""

import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
# WIRELENS_DASHBOARDS_OUT: write elsewhere (tests/grafana_dashboards.rs compares the result with
# the committed files).
OUT = os.environ.get("WIRELENS_DASHBOARDS_OUT") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "dashboards"
)


class Dash:
    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels, self.vars = [], []
        self.y, self.x, self.row_h = 0, 0, 0
        self.next_id = 1

    def var(self, name, label, query, multi=True):
        self.vars.append(
            {
                "name": name,
                "label": label,
                "type": "query",
                "datasource": DS,
                "query": {"query": query, "refId": "vars"},
                "definition": query,
                "refresh": 2,
                "multi": multi,
                "includeAll": multi,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}
                if multi
                else {},
                "sort": 1,
                "options": [],
                "hide": 0,
            }
        )

    def row(self, title):
        self.newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            }
        )
        self.y += 1

    def newline(self):
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def _place(self, w, h):
        if self.x + w > 24:
            self.newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def timeseries(self, title, targets, unit, description="", w=8, h=8, stack=False):
        custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": True}
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        self.panels.append(
            {
                "type": "timeseries",
                "id": self._id(),
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
                "options": {
                    "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                },
                "targets": [
                    {"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": l, "range": True}
                    for i, (e, l) in enumerate(targets)
                ],
            }
        )

    def stat(self, title, expr, unit, description="", w=4, h=4):
        self.panels.append(
            {
                "type": "stat",
                "id": self._id(),
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area"},
                "targets": [{"refId": "A", "datasource": DS, "expr": expr, "range": True}],
            }
        )

    def table(self, title, targets, description="", w=24, h=9, units=None):
        """targets: (expr, column title, unit); instant queries merged on their labels."""
        overrides = []
        rename = {}
        for i, (_e, col, unit) in enumerate(targets):
            ref = chr(65 + i)
            rename[f"Value #{ref}"] = col
            overrides.append(
                {"matcher": {"id": "byName", "options": col},
                 "properties": [{"id": "unit", "value": unit}]}
            )
        self.panels.append(
            {
                "type": "table",
                "id": self._id(),
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "fieldConfig": {"defaults": {}, "overrides": overrides},
                "options": {"showHeader": True, "sortBy": [{"displayName": targets[0][1], "desc": True}]},
                "transformations": [
                    {"id": "merge", "options": {}},
                    {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename}},
                ],
                "targets": [
                    {"refId": chr(65 + i), "datasource": DS, "expr": e, "format": "table",
                     "instant": True, "range": False}
                    for i, (e, _c, _u) in enumerate(targets)
                ],
            }
        )

    def raw(self, panel, w=24, h=12):
        panel["id"] = self._id()
        panel["gridPos"] = self._place(w, h)
        panel["datasource"] = DS
        self.panels.append(panel)

    def write(self):
        templating = [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "options": [],
            }
        ] + self.vars
        d = {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["wirelens"],
            "editable": True,
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-1h", "to": "now"},
            "refresh": "30s",
            "timezone": "",
            "graphTooltip": 1,
            "links": [
                {"type": "dashboards", "tags": ["wirelens"], "asDropdown": True, "title": "wirelens",
                 "includeVars": False, "keepTime": True}
            ],
            "templating": {"list": templating},
            "annotations": {"list": []},
            "panels": self.panels,
        }
        path = os.path.join(OUT, f"{self.uid}.json")
        with open(path, "w") as f:
            json.dump(d, f, indent=2, sort_keys=False)
            f.write("\n")


# ---------------------------------------------------------------------------------------------
# PromQL helpers

RI = "[$__rate_interval]"
RANGE = "[$__range]"


def rate(metric, sel, by, window=RI):
    return f"sum by ({by}) (rate({metric}{{{sel}}}{window}))"


def error_ratio(metric, sel, by, window=RI):
    errs = rate(metric, sel + ',error_type!=""', by, window)
    all_ = rate(metric, sel, by, window)
    return f"({errs} or {all_} * 0) / {all_}"


def quantile(q, metric, sel, by, window=RI):
    by = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{sel}}}{window})))"


def quantiles(metric, sel, by, legend):
    return [(quantile(q, metric, sel, by), f"p{int(q * 100)} {legend}") for q in (0.5, 0.95, 0.99)]


# ---------------------------------------------------------------------------------------------
# Golden signals: HTTP per service and per endpoint.

HS = "http_server_request_duration_seconds"
HC = "http_client_request_duration_seconds"
d = Dash(
    "wirelens-golden-signals",
    "wirelens / Golden signals",
    "Request rate, error ratio and latency per service and per endpoint, from HTTP exchanges "
    "the agent observed (server side: what a service answered; client side: what it called).",
)
d.var("service", "Service", f'label_values({{__name__=~"{HS}_count|{HC}_count"}}, service_name)')
d.var("route", "Route", f'label_values({HS}_count{{service_name=~"$service"}}, http_route)')
S = 'service_name=~"$service"'
SR = 'service_name=~"$service",http_route=~"$route"'
d.row("Per service (HTTP server)")
d.timeseries("Request rate", [(rate(f"{HS}_count", S, "service_name"), "{{service_name}}")], "reqps",
             "Requests answered per second (http.server.request.duration count).")
d.timeseries("Error ratio", [(error_ratio(f"{HS}_count", S, "service_name"), "{{service_name}}")],
             "percentunit", "Share of answered requests with error.type (HTTP 5xx).")
d.timeseries("Latency", [q for q in quantiles(HS, S, "service_name", "{{service_name}}")], "s",
             "p50, p95 and p99 of http.server.request.duration.")
d.timeseries("Responses by status code",
             [(rate(f"{HS}_count", S, "service_name, http_response_status_code"),
               "{{service_name}} {{http_response_status_code}}")], "reqps", w=12, stack=True)
d.timeseries("Unanswered requests (timeouts, resets)",
             [(f'sum by (service_name, protocol, role, error_type) '
               f'(rate(wirelens_requests_unanswered_total{{{S}}}{RI}))',
               "{{service_name}} {{protocol}} {{role}} {{error_type}}")], "reqps",
             "Requests that got no response, every protocol: not in the duration histograms.", w=12)
d.row("Per endpoint (HTTP server)")
EP = "service_name, http_request_method, http_route"
d.timeseries("Request rate by endpoint",
             [(rate(f"{HS}_count", SR, EP), "{{service_name}} {{http_request_method}} {{http_route}}")],
             "reqps")
d.timeseries("Error ratio by endpoint",
             [(error_ratio(f"{HS}_count", SR, EP), "{{service_name}} {{http_request_method}} {{http_route}}")],
             "percentunit")
d.timeseries("p95 latency by endpoint",
             [(quantile(0.95, HS, SR, EP), "{{service_name}} {{http_request_method}} {{http_route}}")], "s")
d.table("Endpoints over the time range", [
    (rate(f"{HS}_count", SR, EP, RANGE), "Requests/s", "reqps"),
    (error_ratio(f"{HS}_count", SR, EP, RANGE), "Error ratio", "percentunit"),
    (quantile(0.5, HS, SR, EP, RANGE), "p50", "s"),
    (quantile(0.95, HS, SR, EP, RANGE), "p95", "s"),
    (quantile(0.99, HS, SR, EP, RANGE), "p99", "s"),
])
d.row("Calls out (HTTP client)")
CP = "service_name, server_address, server_port"
d.timeseries("Request rate by server", [(rate(f"{HC}_count", S, CP),
                                          "{{service_name}} -> {{server_address}}:{{server_port}}")], "reqps")
d.timeseries("Error ratio by server", [(error_ratio(f"{HC}_count", S, CP),
                                         "{{service_name}} -> {{server_address}}:{{server_port}}")],
             "percentunit", "Client view: 4xx and 5xx are errors.")
d.timeseries("p95 latency by server", [(quantile(0.95, HC, S, CP),
                                         "{{service_name}} -> {{server_address}}:{{server_port}}")], "s")
d.write()

# ---------------------------------------------------------------------------------------------
# Databases: SQL (MySQL, PostgreSQL).

DC = "db_client_operation_duration_seconds"
DSV = "wirelens_db_server_operation_duration_seconds"
d = Dash(
    "wirelens-databases",
    "wirelens / Databases",
    "SQL operations (MySQL, PostgreSQL) by db.system.name, db.operation.name and "
    "db.collection.name, as the calling services saw them and as the database servers did.",
)
d.var("db_system", "Database system",
      f'label_values({DC}_count{{db_system_name!="redis"}}, db_system_name)')
d.var("service", "Client service",
      f'label_values({DC}_count{{db_system_name=~"$db_system"}}, service_name)')
C = 'db_system_name=~"$db_system",service_name=~"$service"'
OP = "db_system_name, db_operation_name, db_collection_name"
OPL = "{{db_system_name}} {{db_operation_name}} {{db_collection_name}}"
d.row("Operations (client side)")
d.timeseries("Operations per second", [(rate(f"{DC}_count", C, OP), OPL)], "ops", w=12)
d.timeseries("Error ratio", [(error_ratio(f"{DC}_count", C, "db_system_name, service_name"),
                              "{{service_name}} -> {{db_system_name}}")], "percentunit", w=12)
d.timeseries("Latency", quantiles(DC, C, "db_system_name", "{{db_system_name}}"), "s")
d.timeseries("p95 latency by operation", [(quantile(0.95, DC, C, OP), OPL)], "s")
d.timeseries("Errors by code", [(rate(f"{DC}_count", C + ',error_type!=""', "db_system_name, error_type"),
                                 "{{db_system_name}} {{error_type}}")], "ops",
             "error.type: the MySQL error number or the SQLSTATE.")
d.table("Operations over the time range", [
    (rate(f"{DC}_count", C, "service_name, server_address, server_port, " + OP, RANGE), "Ops/s", "ops"),
    (error_ratio(f"{DC}_count", C, "service_name, server_address, server_port, " + OP, RANGE),
     "Error ratio", "percentunit"),
    (quantile(0.95, DC, C, "service_name, server_address, server_port, " + OP, RANGE), "p95", "s"),
])
d.row("Operations (database server side)")
SV = 'db_system_name=~"$db_system"'
d.timeseries("Operations per second, as served", [(rate(f"{DSV}_count", SV, "service_name, " + OP),
                                                    "{{service_name}} " + OPL)], "ops", w=12)
d.timeseries("p95 latency, as served", [(quantile(0.95, DSV, SV, "service_name, " + OP),
                                          "{{service_name}} " + OPL)], "s", w=12)
d.write()

# ---------------------------------------------------------------------------------------------
# Redis.

d = Dash("wirelens-redis", "wirelens / Redis",
         "Redis commands (db.operation.name) as the calling services and the servers saw them.")
d.var("service", "Client service",
      f'label_values({DC}_count{{db_system_name="redis"}}, service_name)')
R = 'db_system_name="redis",service_name=~"$service"'
d.row("Commands (client side)")
d.timeseries("Commands per second", [(rate(f"{DC}_count", R, "db_operation_name"), "{{db_operation_name}}")],
             "ops", stack=True)
d.timeseries("Error ratio", [(error_ratio(f"{DC}_count", R, "service_name"), "{{service_name}}")],
             "percentunit")
d.timeseries("Errors by prefix", [(rate(f"{DC}_count", R + ',error_type!=""', "db_operation_name, error_type"),
                                   "{{db_operation_name}} {{error_type}}")], "ops",
             "error.type: the error prefix of the reply (ERR, WRONGTYPE, ...).")
d.timeseries("Latency", quantiles(DC, R, "", "all commands"), "s")
d.timeseries("p99 latency by command", [(quantile(0.99, DC, R, "db_operation_name"), "{{db_operation_name}}")],
             "s")
d.timeseries("Commands per second, as served",
             [(rate(f"{DSV}_count", 'db_system_name="redis"', "service_name, db_operation_name"),
               "{{service_name}} {{db_operation_name}}")], "ops")
d.table("Commands over the time range", [
    (rate(f"{DC}_count", R, "service_name, server_address, server_port, db_operation_name", RANGE),
     "Commands/s", "ops"),
    (error_ratio(f"{DC}_count", R, "service_name, server_address, server_port, db_operation_name", RANGE),
     "Error ratio", "percentunit"),
    (quantile(0.99, DC, R, "service_name, server_address, server_port, db_operation_name", RANGE), "p99", "s"),
])
d.write()

# ---------------------------------------------------------------------------------------------
# DNS.

DL = "dns_lookup_duration_seconds"
DNSV = "wirelens_dns_server_request_duration_seconds"
d = Dash("wirelens-dns", "wirelens / DNS",
         "DNS lookups by question type, their response codes and latency, from the resolving "
         "services and from the DNS servers.")
d.var("service", "Client service", f"label_values({DL}_count, service_name)")
Q = 'service_name=~"$service"'
d.row("Lookups (client side)")
d.timeseries("Lookups per second by type", [(rate(f"{DL}_count", Q, "dns_question_type"),
                                             "{{dns_question_type}}")], "reqps", stack=True)
d.timeseries("Failed lookups by response code", [(rate(f"{DL}_count", Q + ',error_type!=""', "error_type"),
                                                  "{{error_type}}")], "reqps",
             "error.type: the RCODE (NXDOMAIN, SERVFAIL, REFUSED...). Lookups without an answer "
             "are in Golden signals, 'Unanswered requests'.")
d.timeseries("Error ratio", [(error_ratio(f"{DL}_count", Q, "service_name"), "{{service_name}}")],
             "percentunit")
d.timeseries("Latency", quantiles(DL, Q, "", "all lookups"), "s")
d.timeseries("p95 latency by server", [(quantile(0.95, DL, Q, "server_address, server_port"),
                                        "{{server_address}}:{{server_port}}")], "s")
d.row("Queries answered (DNS server side)")
d.timeseries("Queries per second, as served", [(rate(f"{DNSV}_count", "", "service_name, dns_question_type"),
                                                "{{service_name}} {{dns_question_type}}")], "reqps", w=12)
d.timeseries("Response codes other than NOERROR, as served",
             [(rate(f"{DNSV}_count", 'error_type!=""', "service_name, error_type"),
               "{{service_name}} {{error_type}}")], "reqps", w=12)
d.write()

# ---------------------------------------------------------------------------------------------
# Service graph.

GR = "wirelens_service_graph_requests_total"
GF = "wirelens_service_graph_requests_failed_total"
GD = "wirelens_service_graph_request_duration_seconds"
d = Dash("wirelens-service-graph", "wirelens / Service graph",
         "Who calls whom: one edge per client service and server service, each exchange counted "
         "once (from the server's side when the server is observed). A peer the agent does not "
         "observe is named by its address.")
d.var("client", "Client", f"label_values({GR}, client)")
d.var("server", "Server", f"label_values({GR}, server)")
G = 'client=~"$client",server=~"$server"'
nodes = (
    f'sum by (id) (label_replace(sum by (server) (rate({GR}{{{G}}}{RANGE})), "id", "$1", "server", "(.*)")'
    f' or label_replace(sum by (client) (rate({GR}{{{G}}}{RANGE})) * 0, "id", "$1", "client", "(.*)"))'
)
edges = (
    f'label_replace(label_replace(label_join(sum by (client, server) (rate({GR}{{{G}}}{RANGE})), '
    f'"id", " -> ", "client", "server"), "source", "$1", "client", "(.*)"), "target", "$1", "server", "(.*)")'
)
d.raw({
    "type": "nodeGraph",
    "title": "Service graph",
    "description": "Nodes: services and peers, with the calls they received per second. Edges: "
                   "calls per second from client to server over the time range.",
    "options": {"nodes": {"mainStatUnit": "reqps"}, "edges": {"mainStatUnit": "reqps"}},
    "transformations": [
        {"id": "organize", "options": {"excludeByName": {"Time": True, "client": True, "server": True},
                                       "renameByName": {"Value #A": "mainstat", "Value #B": "mainstat"}}},
    ],
    "targets": [
        {"refId": "A", "datasource": DS, "expr": nodes, "format": "table", "instant": True, "range": False},
        {"refId": "B", "datasource": DS, "expr": edges, "format": "table", "instant": True, "range": False},
    ],
}, w=24, h=14)
d.table("Edges over the time range", [
    (f"sum by (client, server, protocol) (rate({GR}{{{G}}}{RANGE}))", "Calls/s", "reqps"),
    (f"sum by (client, server, protocol) (rate({GF}{{{G}}}{RANGE})) / "
     f"sum by (client, server, protocol) (rate({GR}{{{G}}}{RANGE}))", "Failed ratio", "percentunit"),
    (quantile(0.5, GD, G, "client, server, protocol", RANGE), "p50", "s"),
    (quantile(0.95, GD, G, "client, server, protocol", RANGE), "p95", "s"),
])
d.timeseries("Calls per second by edge", [(f"sum by (client, server) (rate({GR}{{{G}}}{RI}))",
                                           "{{client}} -> {{server}}")], "reqps")
d.timeseries("Failed calls per second by edge", [(f"sum by (client, server) (rate({GF}{{{G}}}{RI}))",
                                                  "{{client}} -> {{server}}")], "reqps")
d.timeseries("p95 duration by edge", [(quantile(0.95, GD, G, "client, server"), "{{client}} -> {{server}}")],
             "s")
d.write()

# ---------------------------------------------------------------------------------------------
# Agent health.

d = Dash("wirelens-agent", "wirelens / Agent health",
         "What each agent captured, what it lost and why (every stage of the pipeline), what it "
         "tracks and holds, and its exports.")
d.var("instance", "Agent", "label_values(wirelens_kernel_events_total, instance)")
I = 'instance=~"$instance"'
d.row("Capture and loss")
d.timeseries("Events lost per stage", [(f"sum by (stage) (rate(wirelens_events_lost_total{{{I}}}{RI}))",
                                        "{{stage}}")], "eps",
             "ringbuf, read_fault, conn_table_full, inflight_full, decode, undetermined_side, parse, "
             "unmatched_response, gap, pending_overflow: README 'What is counted'.", w=12)
d.timeseries("Kernel events and exchanges", [
    (f"sum by (instance) (rate(wirelens_kernel_events_total{{{I}}}{RI}))", "kernel events {{instance}}"),
    (f"sum by (instance) (rate(wirelens_exchanges_total{{{I}}}{RI}))", "exchanges {{instance}}"),
], "eps", w=12)
d.stat("Events lost (range)", f"sum(increase(wirelens_events_lost_total{{{I}}}{RANGE}))", "short")
d.stat("Exchanges (range)", f"sum(increase(wirelens_exchanges_total{{{I}}}{RANGE}))", "short")
d.stat("Connections tracked", f"sum(wirelens_connections_tracked{{{I}}})", "short")
d.stat("Series held", f"sum(wirelens_series{{{I}}})", "short")
d.stat("Export failures (range)", f"sum(increase(wirelens_export_failures_total{{{I}}}{RANGE}))", "short")
d.stat("Edges waiting", f"sum(wirelens_service_graph_pending{{{I}}})", "short")
d.row("State and export")
d.timeseries("Connections tracked", [(f"sum by (instance) (wirelens_connections_tracked{{{I}}})",
                                      "{{instance}}")], "short")
d.timeseries("Series held, expired", [
    (f"sum by (instance) (wirelens_series{{{I}}})", "held {{instance}}"),
    (f"sum by (instance) (rate(wirelens_series_expired_total{{{I}}}{RI}))", "expired/s {{instance}}"),
], "short")
d.timeseries("Measurements sent to overflow series", [
    (f"sum by (service_name) (rate(wirelens_series_dropped_total{{{I}}}{RI}))", "{{service_name}}")
], "ops", "aggregation.series_per_service spent: the service's _overflow series counts the rest.")
d.timeseries("Export failures", [(f"sum by (exporter) (rate(wirelens_export_failures_total{{{I}}}{RI}))",
                                  "{{exporter}}")], "ops", w=12)
d.timeseries("Service graph bookkeeping", [
    (f"sum(rate(wirelens_service_graph_deduplicated_total{{{I}}}{RI}))", "client records left to the server's"),
    (f"sum(rate(wirelens_service_graph_settled_early_total{{{I}}}{RI}))", "settled early"),
    (f"sum(rate(wirelens_peer_endpoints_refused_total{{{I}}}{RI}))", "peer endpoints refused"),
], "ops", w=12)
d.write()
