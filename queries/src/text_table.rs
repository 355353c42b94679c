//! psql-style aligned text tables for results that arrive as strings.

/// Renders one result set like psql's aligned format: a header, a rule,
/// left-aligned cells separated by ` | `, then `(N rows)`. `None` (SQL NULL)
/// prints as an empty cell, as in psql.
pub(crate) fn render(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.as_deref().map_or(0, |c| c.chars().count()));
        }
    }

    let mut out = String::new();
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    push_line(&mut out, &header, &widths);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&rule.join("+"));
    out.push('\n');
    for row in rows {
        let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
        push_line(&mut out, &cells, &widths);
    }
    let plural = if rows.len() == 1 { "row" } else { "rows" };
    out.push_str(&format!("({} {plural})\n", rows.len()));
    out
}

fn push_line(out: &mut String, cells: &[&str], widths: &[usize]) {
    let padded: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, width)| {
            let cell = cells.get(i).copied().unwrap_or("");
            let pad = width - cell.chars().count().min(*width);
            format!(" {cell}{} ", " ".repeat(pad))
        })
        .collect();
    // psql does not pad the last column.
    out.push_str(padded.join("|").trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn aligns_like_psql() {
        let columns = vec!["customer".to_owned(), "p".to_owned()];
        let rows = vec![
            vec![Some("acme".to_owned()), Some("12".to_owned())],
            vec![Some("b".to_owned()), None],
        ];
        assert_eq!(
            render(&columns, &rows),
            " customer | p\n----------+----\n acme     | 12\n b        |\n(2 rows)\n"
        );
        assert_eq!(
            render(&columns, &[]),
            " customer | p\n----------+---\n(0 rows)\n"
        );
    }
}
