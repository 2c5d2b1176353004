//! Draws a soak's [`Timeline`] as one self-contained SVG for the README: stacked panels over a
//! shared axis of simulated days, downsampled per pixel column so that a year of samples stays
//! small and a one-sample spike still shows.

use std::collections::BTreeMap;

use crate::timeline::{Mark, MarkKind, Sample, Timeline};

/// Where the plots start; the room to their left holds each panel's title, legend and y ticks.
const PLOT_LEFT: f64 = 200.0;
/// One pixel column per downsampled step.
const PLOT_WIDTH: usize = 940;
/// Room right of the plots for the "quorum" and "limit" labels, so they never sit on the data.
const RIGHT_MARGIN: f64 = 60.0;
const WIDTH: f64 = PLOT_LEFT + PLOT_WIDTH as f64 + RIGHT_MARGIN;
/// Where the first panel starts, under the header and its summary line.
const PANELS_TOP: f64 = 64.0;
const PANEL_GAP: f64 = 22.0;
/// Height of one line of legend text, in the left margin and under the strip.
const LINE_HEIGHT: f64 = 15.0;
/// A rough width of one character at 11 px, for wrapping the strip's legend.
const CHAR_WIDTH: f64 = 6.5;

const MEMBERS: &str = "#a8a8a8";
const HEALTHY: &str = "#2e9d3a";
const DOWN: &str = "#d62728";
const BACKUP: &str = "#1f77b4";
const LIMIT: &str = "#d62728";
const FAULT: &str = "#d62728";
const EVENT: &str = "#1f77b4";
/// Reboot lock groups, in order; picked to stay apart from each other.
const GROUP_COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#9467bd", "#e377c2", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f",
];

/// One block of CSS keeps the repeated attributes out of thousands of elements.
const STYLE: &str = "<style>\
text{font-family:sans-serif;font-size:11px;fill:#444}\
.header{font-size:17px;font-weight:bold;fill:#222}\
.summary{fill:#888}\
.title{font-size:13px;font-weight:bold;fill:#222}\
.tick{text-anchor:end}\
.day{text-anchor:middle;fill:#666}\
.frame{fill:#fbfbfb;stroke:#ccc}\
.grid{stroke:#ebebeb}\
.line{fill:none;stroke-linejoin:round}\
.dashed{stroke-dasharray:6 4;stroke-width:1.2}\
</style>";

/// Renders the whole run: a header, then the etcd, reboot lock, backup age and marks panels.
pub fn svg(t: &Timeline) -> String {
    let legend = mark_legend_lines(&t.marks);
    let layout = Layout::new(t, legend.len());
    let mut out = String::new();

    out.push_str(&format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = num(WIDTH),
        h = num(layout.height),
    ));
    out.push_str(STYLE);
    out.push_str(&format!(
        r##"<rect width="{}" height="{}" fill="#fff"/>"##,
        num(WIDTH),
        num(layout.height)
    ));
    header(&mut out, t);
    day_grid(&mut out, t, &layout);
    etcd_panel(&mut out, t, &layout.etcd);
    holders_panel(&mut out, t, &layout.holders);
    backup_panel(&mut out, t, &layout.backup);
    marks_panel(&mut out, t, &layout.marks);
    day_labels(&mut out, t, &layout);
    for (i, line) in legend.iter().enumerate() {
        let y = layout.legend_top + LINE_HEIGHT * i as f64;
        out.push_str(&format!(
            r#"<text x="{}" y="{}">{}</text>"#,
            num(PLOT_LEFT),
            num(y),
            line
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// A panel's box on the page and the value at its top edge (the bottom edge is 0).
struct Panel {
    top: f64,
    height: f64,
    y_max: f64,
}

impl Panel {
    /// The page y of a value, held inside the panel so an odd value cannot draw over another.
    fn y(&self, value: f64) -> f64 {
        let value = value.clamp(0.0, self.y_max);
        self.top + self.height - value / self.y_max * self.height
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }
}

/// Where everything goes on the page; computed once so drawing and tests agree on it.
struct Layout {
    etcd: Panel,
    holders: Panel,
    backup: Panel,
    /// The marks strip; its `y_max` is unused.
    marks: Panel,
    /// Baseline of the first line of the marks legend, under the day labels.
    legend_top: f64,
    height: f64,
}

impl Layout {
    fn new(t: &Timeline, legend_lines: usize) -> Layout {
        let mut top = PANELS_TOP;
        let mut next = |height: f64, y_max: f64| {
            let panel = Panel { top, height, y_max };
            top += height + PANEL_GAP;
            panel
        };

        let etcd = next(130.0, etcd_y_max(t));
        // The legend in the left margin needs a line per group under the title.
        let holders_height = f64::max(130.0, 28.0 + LINE_HEIGHT * t.groups.len() as f64);
        let holders = next(holders_height, holders_y_max(t));
        let backup = next(110.0, backup_y_max(t));
        let marks = next(44.0, 1.0);

        let legend_top = marks.bottom() + 38.0;
        let height = legend_top + LINE_HEIGHT * legend_lines.saturating_sub(1) as f64 + 16.0;
        Layout {
            etcd,
            holders,
            backup,
            marks,
            legend_top,
            height,
        }
    }
}

/// One more than the cluster size, and more if a join ever pushed the member list past it.
fn etcd_y_max(t: &Timeline) -> f64 {
    let seen = t.samples.iter().map(|s| s.members.max(s.down)).max();
    let top = (t.etcd_size + 1).max(seen.unwrap_or(0));
    integer_axis_top(f64::from(top))
}

/// One more than the largest group's max, and more if a group ever held more than that.
fn holders_y_max(t: &Timeline) -> f64 {
    let max = t.groups.iter().map(|(_, max)| *max).max().unwrap_or(0);
    let seen = t
        .samples
        .iter()
        .flat_map(|s| s.holders.iter().copied())
        .max()
        .unwrap_or(0);
    integer_axis_top(f64::from((max + 1).max(seen)))
}

/// A quarter above the limit, so the limit line is not glued to the top, or the worst age seen.
fn backup_y_max(t: &Timeline) -> f64 {
    let limit = 2.0 * t.backup_interval_hours;
    let seen = t
        .samples
        .iter()
        .filter_map(|s| s.backup_age_hours)
        .fold(0.0, f64::max);
    let top = f64::max(limit * 1.25, seen);
    if top <= 0.0 {
        return 1.0;
    }
    let step = nice_step(top);
    (top / step).ceil() * step
}

/// Axes of counts tick every integer up to 6, then on a round step.
fn integer_axis_top(top: f64) -> f64 {
    if top <= 6.0 {
        return top.max(1.0);
    }
    let step = nice_step(top).max(1.0);
    (top / step).ceil() * step
}

/// A step of 1, 2 or 5 times a power of ten that gives about four ticks up to `top`.
fn nice_step(top: f64) -> f64 {
    let raw = top / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The values to label on a y axis that runs from 0 to `y_max`.
fn y_ticks(y_max: f64) -> Vec<f64> {
    let step = if y_max <= 6.0 && y_max.fract() == 0.0 {
        1.0
    } else {
        nice_step(y_max)
    };
    let count = (y_max / step).round() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Every 30 days over a long run, every 7 over a short one.
fn day_ticks(days: f64) -> Vec<f64> {
    let step = if days > 60.0 { 30.0 } else { 7.0 };
    let count = (days.max(0.0) / step).floor() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// The run's length as the x axis divides by it; an empty run still gets a (blank) axis.
fn span(t: &Timeline) -> f64 {
    if t.days > 0.0 {
        t.days
    } else {
        1.0
    }
}

/// The page x of a simulated day.
fn x_of_day(t: &Timeline, day: f64) -> f64 {
    PLOT_LEFT + day.clamp(0.0, span(t)) / span(t) * PLOT_WIDTH as f64
}

/// The pixel column a simulated day falls in.
fn column_of_day(t: &Timeline, day: f64) -> usize {
    let column = (day / span(t) * PLOT_WIDTH as f64).floor();
    column.clamp(0.0, (PLOT_WIDTH - 1) as f64) as usize
}

fn header(out: &mut String, t: &Timeline) {
    out.push_str(&format!(
        r#"<text class="header" x="16" y="28">tn-agent soak: seed {}, {} simulated days, {} etcd members</text>"#,
        t.seed,
        num(t.days),
        t.etcd_size
    ));
    let faults = t.marks.iter().filter(|m| m.kind == MarkKind::Fault).count();
    let events = t.marks.len() - faults;
    out.push_str(&format!(
        r#"<text class="summary" x="16" y="46">{}, {} injected, {}</text>"#,
        count(t.samples.len(), "sample"),
        count(faults, "fault"),
        count(events, "event")
    ));
}

/// "1 fault", "2 faults".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Vertical lines at the day ticks, through every panel, so a dip lines up with its fault.
fn day_grid(out: &mut String, t: &Timeline, layout: &Layout) {
    for day in day_ticks(t.days) {
        let x = num(x_of_day(t, day));
        out.push_str(&format!(
            r#"<path class="grid" d="M{x},{}V{}"/>"#,
            num(layout.etcd.top),
            num(layout.marks.bottom())
        ));
    }
}

fn day_labels(out: &mut String, t: &Timeline, layout: &Layout) {
    let y = num(layout.marks.bottom() + 15.0);
    for day in day_ticks(t.days) {
        out.push_str(&format!(
            r#"<text class="day" x="{}" y="{y}">day {}</text>"#,
            num(x_of_day(t, day)),
            num(day)
        ));
    }
}

/// The panel's box, its y ticks with light grid lines, and its title in the left margin.
fn panel_frame(out: &mut String, panel: &Panel, title: &str, ticks: &[f64]) {
    out.push_str(&format!(
        r#"<rect class="frame" x="{}" y="{}" width="{}" height="{}"/>"#,
        num(PLOT_LEFT),
        num(panel.top),
        PLOT_WIDTH,
        num(panel.height)
    ));
    for &value in ticks {
        let y = panel.y(value);
        if value > 0.0 && value < panel.y_max {
            out.push_str(&format!(
                r#"<path class="grid" d="M{},{}h{}"/>"#,
                num(PLOT_LEFT),
                num(y),
                PLOT_WIDTH
            ));
        }
        out.push_str(&format!(
            r#"<text class="tick" x="{}" y="{}">{}</text>"#,
            num(PLOT_LEFT - 6.0),
            num(y + 4.0),
            num(value)
        ));
    }
    out.push_str(&format!(
        r#"<text class="title" x="16" y="{}">{}</text>"#,
        num(panel.top + 13.0),
        escape(title)
    ));
}

/// A line of the legend in the left margin: a short stroke in the series' colour, then its name.
/// `row` 0 is the first line under the title.
fn legend_entry(out: &mut String, panel: &Panel, row: usize, colour: &str, text: &str) {
    let y = panel.top + 32.0 + LINE_HEIGHT * row as f64;
    out.push_str(&format!(
        r#"<path d="M16,{}h16" stroke="{colour}" stroke-width="3"/>"#,
        num(y - 4.0)
    ));
    out.push_str(&format!(
        r#"<text x="38" y="{}">{}</text>"#,
        num(y),
        escape(text)
    ));
}

/// A dashed reference line across the panel, named in the right margin.
fn reference_line(out: &mut String, panel: &Panel, value: f64, colour: &str, label: &str) {
    let y = panel.y(value);
    out.push_str(&format!(
        r#"<path class="dashed" d="M{},{}h{}" stroke="{colour}"/>"#,
        num(PLOT_LEFT),
        num(y),
        PLOT_WIDTH
    ));
    out.push_str(&format!(
        r#"<text x="{}" y="{}" fill="{colour}">{label}</text>"#,
        num(PLOT_LEFT + PLOT_WIDTH as f64 + 5.0),
        num(y + 4.0)
    ));
}

/// A series drawn as a step line; nothing when it has no points.
fn series(out: &mut String, id: &str, columns: &[Column], panel: &Panel, colour: &str, width: f64) {
    if columns.is_empty() {
        return;
    }
    out.push_str(&format!(
        r#"<path id="{id}" d="{}" class="line" stroke="{colour}" stroke-width="{}"/>"#,
        step_path(columns, panel),
        num(width)
    ));
}

fn etcd_panel(out: &mut String, t: &Timeline, panel: &Panel) {
    panel_frame(out, panel, "etcd", &y_ticks(panel.y_max));
    if t.etcd_size > 0 {
        reference_line(out, panel, f64::from(t.etcd_size / 2 + 1), "#555", "quorum");
    }
    let members = columns(t, |s| Some(f64::from(s.members)));
    let healthy = columns(t, |s| Some(f64::from(s.healthy_voters)));
    let down = columns(t, |s| Some(f64::from(s.down)));
    // Members first and wide, so the healthy voters drawn on top still show where they match.
    series(out, "members", &members, panel, MEMBERS, 4.0);
    series(out, "healthy", &healthy, panel, HEALTHY, 1.5);
    series(out, "down", &down, panel, DOWN, 1.5);
    legend_entry(out, panel, 0, MEMBERS, "members");
    legend_entry(out, panel, 1, HEALTHY, "healthy voters");
    legend_entry(out, panel, 2, DOWN, "members down");
}

fn holders_panel(out: &mut String, t: &Timeline, panel: &Panel) {
    panel_frame(out, panel, "reboot lock holders", &y_ticks(panel.y_max));
    let groups = t.groups.len();
    for (i, (name, max)) in t.groups.iter().enumerate() {
        let colour = GROUP_COLOURS[i % GROUP_COLOURS.len()];
        let holders = columns(t, |s| s.holders.get(i).map(|h| f64::from(*h)));
        // Groups often hold the same count at once: earlier ones are drawn wider, so each line
        // drawn on top leaves the ones beneath it showing at its edges.
        let width = 1.5 + 1.5 * (groups - 1 - i) as f64;
        series(out, &format!("holders-{i}"), &holders, panel, colour, width);
        legend_entry(
            out,
            panel,
            i,
            colour,
            &format!("{} max {max}", shorten(name, 16)),
        );
    }
}

fn backup_panel(out: &mut String, t: &Timeline, panel: &Panel) {
    panel_frame(out, panel, "backup age (h)", &y_ticks(panel.y_max));
    if t.backup_interval_hours > 0.0 {
        reference_line(out, panel, 2.0 * t.backup_interval_hours, LIMIT, "limit");
    }
    let age = columns(t, |s| s.backup_age_hours);
    series(out, "backup-age", &age, panel, BACKUP, 1.5);
}

/// Faults as red triangles in the strip's upper half, events as blue ticks in its lower half;
/// each carries its label as a tooltip.
fn marks_panel(out: &mut String, t: &Timeline, panel: &Panel) {
    panel_frame(out, panel, "faults and events", &[]);
    let fault_top = panel.top + 6.0;
    let event_top = panel.top + panel.height / 2.0 + 4.0;
    for mark in &t.marks {
        let x = x_of_day(t, mark.day);
        let (element, shape) = match mark.kind {
            MarkKind::Fault => (
                "path",
                format!(
                    r#"<path d="M{},{}h8l-4,9z" fill="{FAULT}">"#,
                    num(x - 4.0),
                    num(fault_top)
                ),
            ),
            MarkKind::Event => (
                "rect",
                format!(
                    r#"<rect x="{}" y="{}" width="2" height="12" fill="{EVENT}">"#,
                    num(x - 1.0),
                    num(event_top)
                ),
            ),
        };
        out.push_str(&shape);
        out.push_str(&format!(
            "<title>day {:.1}: {}</title></{element}>",
            mark.day,
            escape(&mark.label)
        ));
    }
    let legend_y = panel.top + 30.0;
    out.push_str(&format!(
        r#"<path d="M18,{}h8l-4,9z" fill="{FAULT}"/><text x="32" y="{}">fault</text>"#,
        num(legend_y - 8.0),
        num(legend_y)
    ));
    out.push_str(&format!(
        r#"<rect x="80" y="{}" width="2" height="12" fill="{EVENT}"/><text x="88" y="{}">event</text>"#,
        num(legend_y - 10.0),
        num(legend_y)
    ));
}

/// The marks counted by their label's first word, faults then events, most frequent first,
/// wrapped to the plot's width. Each line is SVG text content, already escaped.
fn mark_legend_lines(marks: &[Mark]) -> Vec<String> {
    let max_chars = (PLOT_WIDTH as f64 / CHAR_WIDTH) as usize;
    let mut lines = Vec::new();
    for (kind, name, colour) in [
        (MarkKind::Fault, "faults", FAULT),
        (MarkKind::Event, "events", EVENT),
    ] {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for mark in marks.iter().filter(|m| m.kind == kind) {
            let word = mark.label.split_whitespace().next().unwrap_or("(blank)");
            *counts.entry(word).or_default() += 1;
        }
        if counts.is_empty() {
            continue;
        }
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));

        let prefix = format!(r#"<tspan fill="{colour}" font-weight="bold">{name}:</tspan>"#);
        let mut line = prefix.clone();
        let mut chars = name.len() + 1;
        for (word, count) in counts {
            let item = format!("{word} ×{count}");
            let item_chars = item.chars().count() + 3;
            if chars + item_chars > max_chars && chars > name.len() + 1 {
                lines.push(line);
                line = prefix.clone();
                chars = name.len() + 1;
            }
            line.push_str(&format!("\u{a0}\u{a0} {}", escape(&item)));
            chars += item_chars;
        }
        lines.push(line);
    }
    lines
}

/// One pixel column's share of a series: how far the line must reach within the column, and
/// where it must stay until the next column with a sample.
#[derive(Debug)]
struct Column {
    index: usize,
    min: f64,
    max: f64,
    last: f64,
    /// The series had no value just before this column's first point: start a new line here.
    after_gap: bool,
}

/// Folds the samples into pixel columns for one series. A sample without a value (`None`)
/// breaks the line.
fn columns(t: &Timeline, value: impl Fn(&Sample) -> Option<f64>) -> Vec<Column> {
    let mut columns: Vec<Column> = Vec::new();
    let mut in_gap = true;
    for sample in &t.samples {
        let Some(v) = value(sample) else {
            in_gap = true;
            continue;
        };
        let index = column_of_day(t, sample.day);
        match columns.last_mut() {
            Some(column) if column.index == index && !in_gap => {
                column.min = column.min.min(v);
                column.max = column.max.max(v);
                column.last = v;
            }
            _ => columns.push(Column {
                index,
                min: v,
                max: v,
                last: v,
                after_gap: in_gap,
            }),
        }
        in_gap = false;
    }
    columns
}

/// The SVG path of a step line through the columns: in each column a vertical stroke over
/// everything the series did there, then a horizontal hold at its last value until the next
/// column. Holds are written only where the line turns, which keeps flat stretches short.
fn step_path(columns: &[Column], panel: &Panel) -> String {
    let mut d = String::new();
    let mut x = 0.0;
    let mut y = 0.0;
    // The x the line has reached without writing it down yet.
    let mut held_to = 0.0;
    for column in columns {
        let column_x = round1(PLOT_LEFT + column.index as f64 + 0.5);
        let low = round1(panel.y(column.min));
        let high = round1(panel.y(column.max));
        let last = round1(panel.y(column.last));
        if column.after_gap {
            if held_to != x {
                d.push_str(&format!("H{}", num(held_to)));
            }
            d.push_str(&format!("M{},{}", num(column_x), num(low)));
            x = column_x;
            y = low;
        }
        for target in [low, high, last] {
            if target != y {
                if x != column_x {
                    d.push_str(&format!("H{}", num(column_x)));
                    x = column_x;
                }
                d.push_str(&format!("V{}", num(target)));
                y = target;
            }
        }
        held_to = column_x;
    }
    if held_to != x {
        d.push_str(&format!("H{}", num(held_to)));
    }
    d
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A number as SVG wants it: at most one decimal, and none when it is whole.
fn num(v: f64) -> String {
    let v = round1(v);
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Text made safe for XML content and attributes. Control characters, which XML 1.0 does not
/// allow at all, become `?`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, so a long group name cannot run into the y ticks.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut short: String = s.chars().take(max - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady three-member cluster over a year, with two groups and a backup every 6 hours.
    fn steady(samples: usize) -> Timeline {
        let days = 365.0;
        Timeline {
            seed: 7,
            days,
            etcd_size: 3,
            groups: vec![("etcd".to_string(), 1), ("pool".to_string(), 2)],
            backup_interval_hours: 6.0,
            samples: (0..samples)
                .map(|i| Sample {
                    day: days * i as f64 / samples as f64,
                    members: 3,
                    healthy_voters: 3,
                    down: 0,
                    holders: vec![0, 0],
                    backup_age_hours: Some(1.0),
                })
                .collect(),
            marks: Vec::new(),
        }
    }

    /// The `d` of the path with this id.
    fn path_d<'a>(svg: &'a str, id: &str) -> &'a str {
        let start = svg
            .find(&format!(r#"id="{id}" d=""#))
            .unwrap_or_else(|| panic!("no path {id}"));
        let d = &svg[start + id.len() + 9..];
        &d[..d.find('"').unwrap()]
    }

    /// Tags nest and close, no tag holds a stray `<` or an odd quote, and every `&` in text
    /// starts an entity: enough to catch a label that went out unescaped.
    fn assert_well_formed(svg: &str) {
        fn check_entities(text: &str) {
            for (i, _) in text.match_indices('&') {
                let rest = &text[i + 1..];
                let ok = ["amp;", "lt;", "gt;", "quot;", "apos;"]
                    .iter()
                    .any(|e| rest.starts_with(e));
                assert!(ok, "bare & in {:?}", &text[i..(i + 20).min(text.len())]);
            }
        }
        assert!(svg.starts_with("<svg "), "{}", &svg[..40.min(svg.len())]);
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            check_entities(&rest[..open]);
            let close = open + rest[open..].find('>').expect("unclosed tag");
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "odd quotes in {tag:?}");
            check_entities(tag);
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched close tag");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap());
            }
            rest = &rest[close + 1..];
        }
        check_entities(rest);
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    /// A one-sample spike in one series, and where it must show.
    struct Spike {
        id: &'static str,
        panel: fn(&Layout) -> &Panel,
        value: f64,
        apply: fn(&mut Sample),
    }

    #[test]
    fn one_sample_spike_among_ten_thousand_still_shows() {
        let spikes = [
            Spike {
                id: "down",
                panel: |l| &l.etcd,
                value: 1.0,
                apply: |s| s.down = 1,
            },
            Spike {
                id: "holders-1",
                panel: |l| &l.holders,
                value: 2.0,
                apply: |s| s.holders[1] = 2,
            },
        ];
        for spike in spikes {
            let mut t = steady(10_000);
            let quiet = svg(&t);
            (spike.apply)(&mut t.samples[5_001]);
            let spiked = svg(&t);

            let layout = Layout::new(&t, 0);
            let reach = format!("V{}", num((spike.panel)(&layout).y(spike.value)));
            let id = spike.id;
            assert!(path_d(&spiked, id).contains(&reach), "{id}: spike lost");
            assert!(
                !path_d(&quiet, id).contains(&reach),
                "{id}: spike without one"
            );
        }
    }

    #[test]
    fn a_gap_in_backup_age_breaks_the_line() {
        let mut t = steady(1_000);
        for s in &mut t.samples[400..600] {
            s.backup_age_hours = None;
        }
        let d = path_d(&svg(&t), "backup-age").to_string();
        assert_eq!(d.matches('M').count(), 2, "{d}");
    }

    #[test]
    fn labels_and_group_names_are_escaped() {
        let mut t = steady(100);
        t.groups[0].0 = "a<b&c".to_string();
        t.marks = vec![
            Mark {
                day: 10.0,
                kind: MarkKind::Fault,
                label: r#"kill <&> "i-0abc""#.to_string(),
            },
            Mark {
                day: 20.0,
                kind: MarkKind::Event,
                label: "<update>".to_string(),
            },
        ];
        let out = svg(&t);
        assert_well_formed(&out);
        assert!(out.contains("kill &lt;&amp;&gt; &quot;i-0abc&quot;"));
        assert!(out.contains("a&lt;b&amp;c max 1"));
        assert!(out.contains("&lt;update&gt; ×1"));
        assert!(!out.contains("<&>"));
    }

    #[test]
    fn empty_timeline_renders_a_header() {
        let out = svg(&Timeline::default());
        assert_well_formed(&out);
        assert!(out.contains("tn-agent soak: seed 0, 0 simulated days, 0 etcd members"));
        assert!(!out.contains("NaN") && !out.contains("inf"));
    }

    #[test]
    fn a_year_of_busy_samples_stays_under_500_kb() {
        let mut t = steady(100_000);
        t.groups = ["etcd", "master", "soak-pool-a", "soak-pool-b"]
            .iter()
            .map(|g| (g.to_string(), 2))
            .collect();
        // Every series changes on nearly every sample: the worst case for the path sizes.
        let mut state: u64 = 1;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for (i, s) in t.samples.iter_mut().enumerate() {
            s.members = 2 + next() % 3;
            s.healthy_voters = next() % 4;
            s.down = next() % 2;
            s.holders = (0..4).map(|_| next() % 3).collect();
            s.backup_age_hours = Some((i % 700) as f64 * 0.02);
        }
        t.marks = (0..300)
            .map(|i| Mark {
                day: i as f64 * 1.2,
                kind: if i % 3 == 0 {
                    MarkKind::Event
                } else {
                    MarkKind::Fault
                },
                label: format!("kill etcd i-{i:08x}"),
            })
            .collect();
        let out = svg(&t);
        assert_well_formed(&out);
        assert!(out.len() < 500_000, "{} bytes", out.len());
        eprintln!("10^5 busy samples: {} bytes", out.len());
    }

    #[test]
    fn day_ticks_follow_the_run_length() {
        assert_eq!(day_ticks(365.0).last(), Some(&360.0));
        assert_eq!(day_ticks(365.0)[1], 30.0);
        assert_eq!(day_ticks(30.0), vec![0.0, 7.0, 14.0, 21.0, 28.0]);
        assert_eq!(day_ticks(0.0), vec![0.0]);
    }
}
