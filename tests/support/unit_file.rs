//! A small parser for systemd unit files: sections of `Key=value` assignments, with systemd's
//! comment, line-continuation and list-reset rules.

/// A parsed unit file: sections of `Key=value` assignments in file order, with systemd's
/// comment and line-continuation rules.
#[derive(Debug, Clone, Default)]
pub struct UnitFile {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl UnitFile {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut file = UnitFile::default();
        for (n, line) in logical_lines(text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                file.sections.push((name.to_string(), Vec::new()));
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {n}: not `Key=value`: {line}"))?;
            let (_, entries) = file
                .sections
                .last_mut()
                .ok_or_else(|| format!("line {n}: assignment outside a section"))?;
            entries.push((key.trim().to_string(), value.trim().to_string()));
        }
        Ok(file)
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.iter().any(|(s, _)| s == section)
    }

    /// Every value assigned to `key` in `section`, in order; an empty assignment resets the
    /// list, as in systemd.
    pub fn values(&self, section: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (_, entries) in self.sections.iter().filter(|(s, _)| s == section) {
            for (_, v) in entries.iter().filter(|(k, _)| k == key) {
                if v.is_empty() {
                    out.clear();
                } else {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The last value of `key` in `section`.
    pub fn value(&self, section: &str, key: &str) -> Option<String> {
        self.values(section, key).pop()
    }

    /// A space-separated list setting (`After=`, `Wants=`, `WantedBy=` ...), all assignments
    /// joined.
    pub fn list(&self, section: &str, key: &str) -> Vec<String> {
        self.values(section, key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string))
            .collect()
    }
}

/// Joins lines ending in a backslash with the next (the backslash becomes a space, as systemd
/// does), numbering each logical line by its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (n, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                acc.push_str(head);
                acc.push(' ');
                current = Some((n, acc));
            }
            None => {
                acc.push_str(line);
                out.push((n, acc));
            }
        }
    }
    out.extend(current);
    out
}
