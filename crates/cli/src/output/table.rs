//! Aligned text tables the way the cf CLI prints them: a header row, then one
//! row per item, columns padded to the widest cell and separated by three
//! spaces, no trailing whitespace.

/// Spaces between columns.
const GAP: usize = 3;

/// Renders rows (the first row is the header) as aligned text, one line per row.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + GAP;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders `key: value` pairs with the values aligned, as `cf org` does.
pub fn render_key_values(pairs: &[(&str, String)]) -> String {
    let rows: Vec<Vec<String>> = pairs.iter().map(|(k, v)| vec![format!("{k}:"), v.clone()]).collect();
    render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_string()).collect()
    }

    #[test]
    fn aligns_columns_and_trims() {
        let out = render(&[row(&["name", "state"]), row(&["a-long-name", "up"]), row(&["b", ""])]);
        assert_eq!(out, "name          state\na-long-name   up\nb\n");
    }

    #[test]
    fn single_column_has_no_padding() {
        assert_eq!(render(&[row(&["name"]), row(&["org1"])]), "name\norg1\n");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let out = render(&[row(&["név", "x"]), row(&["ab", "y"])]);
        assert_eq!(out, "név   x\nab    y\n");
    }

    #[test]
    fn key_values_align() {
        let out = render_key_values(&[("name", "o".into()), ("spaces", "a, b".into())]);
        assert_eq!(out, "name:     o\nspaces:   a, b\n");
    }

    #[test]
    fn empty_table_is_empty() {
        assert_eq!(render(&[]), "");
    }
}
