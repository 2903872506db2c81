//! `armfw completions SHELL` and `armfw man`: generated from the same clap definitions as the
//! command itself; and "did you mean" for profile names.

use anyhow::Result;
use clap::CommandFactory;

use crate::Cli;

/// Print the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "armfw", &mut buf);
    crate::output::write_bytes(&buf)
}

/// Print the man page (roff) of `armfw` and its commands.
pub fn man() -> Result<()> {
    let cmd = Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let title = format!("armfw-{}", sub.get_name());
        let sub = sub.clone().bin_name(format!("armfw {}", sub.get_name()));
        clap_mangen::Man::new(sub).title(title).render(&mut buf)?;
    }
    crate::output::write_bytes(&buf)
}

/// The built-in profile name closest to `name`, if one is close enough to be a typo (an edit
/// distance of at most a third of the name).
pub fn closest<'a>(name: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|n| (distance(name, n), n))
        .filter(|&(d, n)| d <= n.chars().count().max(3) / 3)
        .min()
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}
