//! `rolesh-packaging-gen OUT_DIR`: writes OUT_DIR/man/rolesh.1, OUT_DIR/man/rolesh-SUBCOMMAND.1
//! and OUT_DIR/completions/{rolesh.bash,_rolesh,rolesh.fish} from `rolesh::command_line()`.
//! rolesh(1) gets the hand-written sections of packaging/man/rolesh.1.extra (login mode,
//! exit status, files, see also) between the subcommand list and the version.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: rolesh-packaging-gen OUT_DIR");
        std::process::exit(2);
    };
    if let Err(e) = generate(Path::new(&out)) {
        eprintln!("rolesh-packaging-gen: {e}");
        std::process::exit(1);
    }
}

fn generate(out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    let completions = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;

    let mut cmd = rolesh::command_line();
    // The man pages leave out clap's `help` subcommand (every page documents --help).
    let mut man_cmd = cmd.clone().disable_help_subcommand(true);
    man_cmd.build();
    let date = date();

    // rolesh(1): clap's sections plus the hand-written ones.
    let extra_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/rolesh.1.extra");
    let extra = fs::read_to_string(&extra_path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", extra_path.display())))?;
    let page = clap_mangen::Man::new(man_cmd.clone())
        .date(&date)
        .manual("rolesh manual");
    let mut buf = Vec::new();
    page.render_title(&mut buf)?;
    page.render_name_section(&mut buf)?;
    page.render_synopsis_section(&mut buf)?;
    page.render_description_section(&mut buf)?;
    page.render_options_section(&mut buf)?;
    // `rolesh broker` is documented in section 8 (rolesh-broker(8)), with the units.
    let mut subcommands = Vec::new();
    page.render_subcommands_section(&mut subcommands)?;
    let subcommands =
        String::from_utf8_lossy(&subcommands).replace("rolesh\\-broker(1)", "rolesh\\-broker(8)");
    buf.write_all(subcommands.as_bytes())?;
    buf.write_all(extra.as_bytes())?;
    page.render_version_section(&mut buf)?;
    write(&man.join("rolesh.1"), &buf)?;

    // rolesh-SUBCOMMAND(1), each pointing back at rolesh(1); not broker (section 8).
    for sub in man_cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "broker")
    {
        let name = format!("rolesh-{}", sub.get_name());
        // Command::name wants a &'static str without clap's "string" feature, which would
        // change clap's features and so rebuild it instead of reusing the root build's.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let sub = sub.clone().name(static_name).display_name(name.clone());
        let page = clap_mangen::Man::new(sub)
            .date(&date)
            .manual("rolesh manual");
        let mut buf = Vec::new();
        page.render(&mut buf)?;
        buf.extend_from_slice(
            b".SH \"SEE ALSO\"\n.BR rolesh (1),\n.BR rolesh.toml (5),\n.BR rolesh\\-broker (8)\n",
        );
        write(&man.join(format!("{name}.1")), &buf)?;
    }

    for (shell, file) in [
        (Shell::Bash, "rolesh.bash"),
        (Shell::Zsh, "_rolesh"),
        (Shell::Fish, "rolesh.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "rolesh", &mut buf);
        write(&completions.join(file), &buf)?;
    }
    Ok(())
}

fn write(path: &PathBuf, data: &[u8]) -> std::io::Result<()> {
    fs::write(path, data)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    println!("{}", path.display());
    Ok(())
}

/// The page date: SOURCE_DATE_EPOCH (reproducible builds) or today, as YYYY-MM-DD.
fn date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
