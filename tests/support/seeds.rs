//! The seed pages' field tables, read for the tests that compare them with the catalogue and
//! with `wechatpay describe` (included by path from both crates' tests).

use wechatpay_chain::catalog::Field;

/// Depth first: (depth, name, type, required).
pub fn flat(fields: &[Field], depth: usize, out: &mut Vec<(usize, String, String, bool)>) {
    for f in fields {
        out.push((depth, f.name.clone(), f.ty.to_string(), f.required));
        flat(&f.children, depth + 1, out);
    }
}

/// The rows of the markdown tables of a seed page, in order: (depth, name, type, required).
pub fn markdown_tables(text: &str) -> Vec<Vec<(usize, String, String, bool)>> {
    let mut tables = Vec::new();
    let mut cur: Option<Vec<_>> = None;
    for line in text.lines() {
        if line.starts_with("| 请求参数") || line.starts_with("| 返回字典") {
            cur = Some(Vec::new());
            continue;
        }
        if line.starts_with("| ---") {
            continue;
        }
        match (&mut cur, line.starts_with("| ")) {
            (Some(rows), true) => {
                let cells: Vec<&str> = line.split(" | ").collect();
                if cells.len() < 2 {
                    continue; // a row across the table: no fields
                }
                let name = cells[0].trim_start_matches("| ");
                let (name, attrs) = name.split_once(" {").unwrap_or((name, ""));
                let ty = cells[1]
                    .split(" {")
                    .next()
                    .unwrap()
                    .trim()
                    .trim_matches('`');
                let depth = attrs
                    .split(['=', ' ', '}'])
                    .skip_while(|a| *a != "data-indent")
                    .nth(1)
                    .map_or(0, |n| n.parse().unwrap());
                rows.push((
                    depth,
                    name.to_string(),
                    ty.to_string(),
                    attrs.contains("data-required"),
                ));
            }
            (Some(_), false) => tables.push(cur.take().unwrap()),
            _ => {}
        }
    }
    tables
}
