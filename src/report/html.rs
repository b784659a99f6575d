//! The report as one self-contained HTML page ([`Report::to_html`]): tables and inline SVG
//! charts drawn here, one inline style sheet, no script, no link, no external resource of any
//! kind. A Content-Security-Policy meta element (`default-src 'none'; style-src 'unsafe-inline';
//! img-src data:`) makes the browser refuse any fetch the page might still name.
//!
//! This module owns the presentation only; every figure comes from the typed [`Report`]. Each
//! section is a `<section id="...">` (`policy`, `holdings`, `erasures`, `requests`, `holds`,
//! `disclosures`, `integrity`); each chart an `<svg>` with an `id` (`chart-due`,
//! `chart-categories`, `chart-erasures`, `chart-response`) whose bars carry their figures as
//! `data-label`, `data-series` and `data-count` attributes (`suppressed` for a withheld count),
//! so that a reader or a test can check the picture against the facts.

use std::fmt::Write as _;

use super::{ErasureCause, Report};
use crate::anonymised::Cell;

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count as a table cell, its figure in `data-count`.
fn td(c: Cell) -> String {
    format!("<td class=\"num\" data-count=\"{c}\">{c}</td>")
}

/// The style sheet: inline, system fonts only.
const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;\
max-width:1180px;color:#1d232b;background:#fff;line-height:1.4}\
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:2px solid #dde3ea;\
padding-bottom:.2rem;margin-top:2rem}.meta{color:#56606b}\
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}\
th,td{border:1px solid #dde3ea;padding:.25rem .55rem;text-align:left;vertical-align:top}\
th{background:#f3f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.flag{background:#fde8e8;color:#9b1c1c;border:1px solid #f5b5b5;padding:.4rem .7rem;border-radius:4px}\
.ok{background:#e7f6ec;color:#1e6b3a;border:1px solid #a8dcb9;padding:.4rem .7rem;border-radius:4px}\
svg{display:block;margin:.5rem 0 1rem}svg text{font-size:11px;fill:#38414b}\
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}\
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}\
.note{font-size:.85rem;color:#56606b}";

/// Colours of chart series, in order.
const PALETTE: [&str; 6] = [
    "#2f6db5", "#d9822b", "#3a9b5c", "#a43f98", "#c23b3b", "#7a7f87",
];

/// One bar of a chart: a label and its stacked segments (series name, count).
struct Bar {
    label: String,
    segments: Vec<(String, Cell)>,
}

/// A vertical bar chart (stacked when bars have several segments), with an optional dashed
/// marker line between two bars (`after` bars from the left) and its label.
fn bar_chart(
    id: &str,
    title: &str,
    bars: &[Bar],
    series: &[String],
    marker: Option<(usize, &str)>,
) -> String {
    const W: f64 = 1100.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 48.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 48.0;
    let plot_h = H - TOP - BOTTOM;
    let total = |b: &Bar| -> u64 { b.segments.iter().filter_map(|(_, c)| c.count()).sum() };
    let max = bars.iter().map(total).max().unwrap_or(0).max(1);
    let slot = (W - LEFT - 8.0) / bars.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(2.0);
    let colour = |name: &str| {
        let i = series.iter().position(|s| s == name).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"{id}\" role=\"img\" aria-label=\"{t}\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\"><title>{t}</title>",
        t = esc(title)
    );
    // Axis and gridlines at 0, half and the maximum.
    let mut ticks = vec![0, max];
    if max >= 2 {
        ticks.insert(1, max / 2);
    }
    for v in ticks {
        let y = TOP + plot_h * (1.0 - v as f64 / max as f64);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"#dde3ea\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{v}</text>",
            x2 = W - 8.0,
            tx = LEFT - 6.0,
            ty = y + 4.0
        );
    }
    let label_every = (bars.len() / 24).max(1);
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = TOP + plot_h;
        for (name, c) in &b.segments {
            let n = c.count().unwrap_or(0);
            let h = plot_h * n as f64 / max as f64;
            y -= h;
            let _ = write!(
                s,
                "<rect class=\"bar\" data-label=\"{l}\" data-series=\"{sn}\" data-count=\"{c}\" \
                 x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" fill=\"{col}\">\
                 <title>{l} {sn}: {c}</title></rect>",
                l = esc(&b.label),
                sn = esc(name),
                col = colour(name)
            );
        }
        if b.segments.iter().any(|(_, c)| *c == Cell::Suppressed) {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">&lt;k</text>",
                cx = x + bar_w / 2.0,
                ty = y - 3.0
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" \
                 transform=\"rotate(-40 {cx:.1} {ty:.1})\">{l}</text>",
                cx = x + bar_w / 2.0,
                ty = TOP + plot_h + 14.0,
                l = esc(&b.label)
            );
        }
    }
    if let Some((after, label)) = marker {
        let x = LEFT + slot * after as f64;
        let _ = write!(
            s,
            "<line class=\"marker\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{y2}\" \
             stroke=\"#c23b3b\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\" fill=\"#c23b3b\">{l}</text>",
            y2 = TOP + plot_h,
            tx = x + 4.0,
            ty = TOP + 10.0,
            l = esc(label)
        );
    }
    s.push_str("</svg>");
    if series.len() > 1 {
        s.push_str("<div class=\"legend\">");
        for name in series {
            let _ = write!(
                s,
                "<span><i style=\"background:{}\"></i>{}</span>",
                colour(name),
                esc(name)
            );
        }
        s.push_str("</div>");
    }
    s
}

impl Report {
    /// The report as one self-contained HTML page (this module's documentation says what it
    /// holds); the same facts as the report itself, escaped.
    pub fn to_html(&self) -> String {
        let mut h = String::with_capacity(32 * 1024);
        let title = "pdvault: auditor's report";
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; img-src data:\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>"
        );
        let since = self
            .period
            .since
            .map_or("the start of the audit trail".to_owned(), |s| s.to_string());
        let _ = write!(
            h,
            "<p class=\"meta\" id=\"period\">Period: {} to {}. Generated {}. Counts below {} \
             are withheld (&lt;k, “suppressed”). No subject is named or referenced.</p>",
            esc(&since),
            esc(&self.period.until.to_string()),
            esc(&self.generated_at.to_string()),
            self.min_cell
        );
        self.policy_html(&mut h);
        self.holdings_html(&mut h);
        self.erasures_html(&mut h);
        self.requests_html(&mut h);
        self.holds_html(&mut h);
        self.disclosures_html(&mut h);
        self.integrity_html(&mut h);
        h.push_str("</body></html>\n");
        h
    }

    fn policy_html(&self, h: &mut String) {
        h.push_str("<section id=\"policy\"><h2>Policy</h2>");
        let Some(p) = &self.policy else {
            h.push_str(
                "<p>The vault has no policy: nothing is retained or erased by rule.</p></section>",
            );
            return;
        };
        let _ = write!(
            h,
            "<p>{} (version {})</p><table id=\"table-policy\"><tr><th>Category</th>\
             <th>fideslang</th><th>Minimum</th><th>Maximum</th><th>Counted from</th>\
             <th>Rule</th><th>The policy's words</th></tr>",
            esc(p.name.as_deref().unwrap_or("unnamed policy")),
            esc(p.version.as_deref().unwrap_or("none"))
        );
        for c in &p.categories {
            let _ = write!(
                h,
                "<tr data-category=\"{cat}\"><td>{cat}</td><td>{f}</td><td>{min}</td><td>{max}</td>\
                 <td>{a}</td><td>{s}</td><td>{w}</td></tr>",
                cat = esc(&c.category),
                f = esc(c.fideslang.as_deref().unwrap_or("—")),
                min = esc(c.minimum.as_deref().unwrap_or("—")),
                max = esc(c.maximum.as_deref().unwrap_or("—")),
                a = esc(&c.anchor),
                s = esc(&c.summary),
                w = esc(c.wording.as_deref().unwrap_or("—")),
            );
        }
        h.push_str("</table>");
        if !p.request_deadlines.is_empty() {
            h.push_str("<table id=\"table-deadlines\"><tr><th>Request</th><th>Deadline</th></tr>");
            for (k, d) in &p.request_deadlines {
                let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(d));
            }
            h.push_str("</table>");
        }
        if let Some(a) = &p.audit_retention {
            let _ = write!(h, "<p>Audit entries are kept {}.</p>", esc(a));
        }
        h.push_str("</section>");
    }

    fn holdings_html(&self, h: &mut String) {
        let d = &self.holdings;
        let _ = write!(
            h,
            "<section id=\"holdings\"><h2>Records held</h2><p>Records: <b data-count=\"{r}\" \
             id=\"records-total\">{r}</b></p>",
            r = d.records
        );
        if d.past_maximum_flag {
            let _ = write!(
                h,
                "<p class=\"flag\" id=\"past-maximum\" data-count=\"{}\">Red flag: {} records \
                 are past their maximum retention, not held and not pending erasure. The sweep \
                 has not destroyed them.</p>",
                d.past_maximum, d.past_maximum
            );
        } else {
            h.push_str(
                "<p class=\"ok\" id=\"past-maximum\" data-count=\"0\">No record is past its \
                 maximum retention.</p>",
            );
        }
        for (id, what, map) in [
            ("table-categories", "Category", &d.by_category),
            ("table-bases", "Legal basis", &d.by_basis),
        ] {
            let _ = write!(
                h,
                "<table id=\"{id}\" style=\"display:inline-table;margin-right:2rem\"><tr>\
                 <th>{what}</th><th>Records</th></tr>"
            );
            for (k, c) in map {
                let _ = write!(
                    h,
                    "<tr data-key=\"{k}\"><td>{k}</td>{}</tr>",
                    td(*c),
                    k = esc(k)
                );
            }
            h.push_str("</table>");
        }
        let bars: Vec<Bar> = d
            .by_category
            .iter()
            .map(|(k, c)| Bar {
                label: k.clone(),
                segments: vec![("records".into(), *c)],
            })
            .collect();
        h.push_str(&bar_chart(
            "chart-categories",
            "Records per category",
            &bars,
            &["records".into()],
            None,
        ));
        h.push_str("<h3>Falling due in the next 24 months</h3>");
        let bars: Vec<Bar> = d
            .due_by_month
            .iter()
            .map(|m| Bar {
                label: m.month.clone(),
                segments: vec![("due".into(), m.count)],
            })
            .collect();
        h.push_str(&bar_chart(
            "chart-due",
            "Records whose maximum retention ends, per month",
            &bars,
            &["due".into()],
            None,
        ));
        h.push_str(
            "<p class=\"note\">Held records and records of subjects with an erasure pending \
             fall due only once nothing protects them, and are not counted here.</p></section>",
        );
    }

    fn erasures_html(&self, h: &mut String) {
        let e = &self.erasures;
        h.push_str(
            "<section id=\"erasures\"><h2>Erasures</h2><table id=\"table-erasures\"><tr>\
             <th>Cause</th><th>Erasures</th><th>Destroyed (records, categories)</th>\
             <th>Retained: hold</th><th>Retained: minimum retention</th></tr>",
        );
        for r in &e.table {
            let _ = write!(
                h,
                "<tr data-cause=\"{}\"><td>{}</td>{}{}{}{}</tr>",
                r.cause,
                esc(r.cause.describe()),
                td(r.erasures),
                td(r.destroyed),
                td(r.retained_held),
                td(r.retained_minimum)
            );
        }
        if e.table.is_empty() {
            h.push_str("<tr><td colspan=\"5\">No erasure in the period.</td></tr>");
        }
        h.push_str("</table>");
        let series: Vec<String> = ErasureCause::ALL
            .iter()
            .filter(|c| e.by_cause.contains_key(c))
            .map(|c| c.name().to_owned())
            .collect();
        let bars: Vec<Bar> = e
            .by_month
            .iter()
            .map(|m| Bar {
                label: m.month.clone(),
                segments: m
                    .by_cause
                    .iter()
                    .map(|(c, n)| (c.name().to_owned(), *n))
                    .collect(),
            })
            .collect();
        h.push_str(&bar_chart(
            "chart-erasures",
            "Erasures per month, by cause",
            &bars,
            &series,
            None,
        ));
        h.push_str(
            "<p class=\"note\">An erasure is one erase call, or one subject's destruction by \
             one sweep. What erase calls retained is counted in the table; what the sweep keeps \
             (held, within minimum retention) stays in the records held.</p></section>",
        );
    }

    fn requests_html(&self, h: &mut String) {
        let r = &self.requests;
        h.push_str(
            "<section id=\"requests\"><h2>Data-subject requests</h2><table id=\"table-requests\">\
             <tr><th>Kind</th><th>Deadline</th><th>Opened</th><th>Answered on time</th>\
             <th>Answered late</th><th>Open</th><th>Open and overdue</th></tr>",
        );
        for k in &r.by_kind {
            let overdue_class = if k.overdue != Cell::Count(0) {
                " class=\"flag\""
            } else {
                ""
            };
            let _ = write!(
                h,
                "<tr data-kind=\"{kind}\"><td>{kind}</td><td>{d}</td>{}{}{}{}\
                 <td class=\"num\" data-count=\"{o}\"><span{overdue_class}>{o}</span></td></tr>",
                td(k.opened),
                td(k.answered_on_time),
                td(k.answered_late),
                td(k.open),
                kind = esc(&k.kind),
                d = esc(k.deadline.as_deref().unwrap_or("none")),
                o = k.overdue,
            );
        }
        h.push_str("</table>");
        if r.overdue_flag {
            h.push_str(
                "<p class=\"flag\" id=\"overdue\">Red flag: requests are open past their \
                 deadline.</p>",
            );
        }
        let bars: Vec<Bar> = r
            .response_times
            .iter()
            .map(|b| Bar {
                label: b.band.clone(),
                segments: vec![(
                    if b.on_time { "on time" } else { "late" }.to_owned(),
                    b.count,
                )],
            })
            .collect();
        let on_time = r.response_times.iter().filter(|b| b.on_time).count();
        h.push_str(&bar_chart(
            "chart-response",
            "Answered requests by response time, as a share of the deadline",
            &bars,
            &["on time".into(), "late".into()],
            Some((on_time, "deadline")),
        ));
        h.push_str("</section>");
    }

    fn holds_html(&self, h: &mut String) {
        let _ = write!(
            h,
            "<section id=\"holds\"><h2>Active legal holds</h2><p>Active holds: \
             <b id=\"holds-total\" data-count=\"{n}\">{n}</b></p><table id=\"table-holds\"><tr>\
             <th>Hold</th><th>Reason</th><th>Reference</th><th>Covers</th><th>Placed</th>\
             <th>Age (days)</th><th>Until</th></tr>",
            n = self.holds.len()
        );
        for x in &self.holds {
            let _ = write!(
                h,
                "<tr data-hold=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&x.reason),
                esc(x.reference.as_deref().unwrap_or("—")),
                esc(&x.covers),
                esc(&x.placed_at.strftime("%Y-%m-%d").to_string()),
                x.age_days,
                esc(&x.until.map_or("released by hand".to_owned(), |u| u
                    .strftime("%Y-%m-%d")
                    .to_string())),
                id = esc(&x.hold),
            );
        }
        h.push_str("</table></section>");
    }

    fn disclosures_html(&self, h: &mut String) {
        h.push_str(
            "<section id=\"disclosures\"><h2>Disclosures</h2><table id=\"table-disclosures\">\
             <tr><th>Recipient</th><th>Ground</th><th>Disclosures</th></tr>",
        );
        for d in &self.disclosures {
            let _ = write!(
                h,
                "<tr data-recipient=\"{r}\" data-ground=\"{g}\"><td>{r}</td><td>{g}</td>{}</tr>",
                td(d.count),
                r = esc(&d.recipient),
                g = esc(&d.ground),
            );
        }
        if self.disclosures.is_empty() {
            h.push_str("<tr><td colspan=\"3\">No disclosure in the period.</td></tr>");
        }
        h.push_str("</table></section>");
    }

    fn integrity_html(&self, h: &mut String) {
        let i = &self.integrity;
        let audit_ok = i.audit_first_bad.is_none();
        let _ = write!(
            h,
            "<section id=\"integrity\"><h2>Integrity</h2><p class=\"{}\" id=\"verdict\" \
             data-whole=\"{}\">{}</p><table id=\"table-integrity\">\
             <tr><th>Audit entries checked</th><td class=\"num\" id=\"audit-entries\" \
             data-count=\"{ae}\">{ae}</td></tr>\
             <tr><th>Audit trail head</th><td>{head}</td></tr>\
             <tr><th>First bad audit entry</th><td id=\"audit-first-bad\">{bad}</td></tr>\
             <tr><th>Store entries, keys, records checked</th><td>{}, {}, {}</td></tr>\
             <tr><th>Key source</th><td>{} ({})</td></tr>\
             <tr><th>Erasure guarantee</th><td>{}</td></tr></table>",
            if i.vault_whole && audit_ok {
                "ok"
            } else {
                "flag"
            },
            i.vault_whole,
            if i.vault_whole {
                "The vault verifies: it is whole."
            } else {
                "The vault is DAMAGED."
            },
            i.entries_checked,
            i.keys_checked,
            i.records_checked,
            esc(&i.key_source),
            esc(&i.key_source_location),
            esc(&i.erasure_guarantee),
            ae = i.audit_entries,
            head = esc(i.audit_head.as_deref().unwrap_or("empty")),
            bad = match &i.audit_first_bad {
                None => "none".to_owned(),
                Some((seq, why)) => format!("entry {seq}: {}", esc(why)),
            },
        );
        if !i.problems.is_empty() {
            h.push_str("<ul id=\"problems\">");
            for p in &i.problems {
                let _ = write!(h, "<li>{}</li>", esc(p));
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>");
    }
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
