//! `wechatpay completions bash|zsh|fish`: a completion script for the shell, completing the
//! subcommands and options, the methods, and the documented path templates (a static list
//! taken from the catalogue when the script is made).

use std::io::Write;

use clap::builder::PossibleValuesParser;
use clap::{Args, ValueEnum};
use clap_complete::Shell;
use wechatpay_chain::catalog;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for. Load it with e.g. `source <(wechatpay completions bash)`,
    /// or save it where the shell looks (`~/.local/share/bash-completion/completions/wechatpay`,
    /// a directory of zsh's `$fpath` as `_wechatpay`, `~/.config/fish/completions/wechatpay.fish`).
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: ShellName,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ShellName {
    Bash,
    Zsh,
    Fish,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `cmd` with METHOD and URI of calls and of `describe` taking the methods and the documented
/// templates as their values, so that the generated script offers them.
fn with_values(cmd: clap::Command) -> clap::Command {
    // sorted by template, then method: each template once
    let mut templates: Vec<&'static str> = catalog::summaries::<&str>(&[])
        .map(|s| s.template)
        .collect();
    templates.dedup();
    let method = |a: clap::Arg| a.value_parser(PossibleValuesParser::new(METHODS));
    let uri = |a: clap::Arg| a.value_parser(PossibleValuesParser::new(templates.iter().copied()));
    cmd.mut_arg("method", method)
        .mut_arg("uri", uri)
        .mut_subcommand("describe", |s| {
            s.mut_arg("method", method).mut_arg("uri", uri)
        })
}

pub fn run(a: &CompletionsArgs, cmd: clap::Command) {
    let shell = match a.shell {
        ShellName::Bash => Shell::Bash,
        ShellName::Zsh => Shell::Zsh,
        ShellName::Fish => Shell::Fish,
    };
    let mut cmd = with_values(cmd);
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "wechatpay", &mut out);
    if let ShellName::Fish = a.shell {
        // clap's fish script completes no positional values: the methods and paths here
        let methods = METHODS.join(" ");
        let mut templates: Vec<&'static str> = catalog::summaries::<&str>(&[])
            .map(|s| s.template)
            .collect();
        templates.dedup();
        let templates = templates.join(" ");
        let words = "(count (commandline -opc))";
        let _ = write!(
            out,
            "# METHOD and URI of a call and of `describe`: the documented paths\n\
             complete -c wechatpay -n \"test {words} -eq 1\" -f -a \"{methods}\"\n\
             complete -c wechatpay -n \"__fish_seen_subcommand_from {methods}; and not __fish_seen_subcommand_from describe\" -f -a \"{templates}\"\n\
             complete -c wechatpay -n \"__fish_wechatpay_using_subcommand describe; and test {words} -eq 2\" -f -a \"{methods}\"\n\
             complete -c wechatpay -n \"__fish_wechatpay_using_subcommand describe; and test {words} -ge 3\" -f -a \"{templates}\"\n"
        );
    }
    let _ = out.flush();
}
