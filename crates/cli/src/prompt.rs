//! Asking the user things on the terminal: free text, passwords without
//! echo, yes/no confirmations and picking one item from a list.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};

/// True when a person can answer prompts.
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for one line of text.
pub fn ask(label: &str) -> Result<String> {
    print!("{label}> ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line).context("cannot read from the terminal")?;
    if read == 0 {
        bail!("No answer given for '{label}' (end of input). Pass it as a flag instead.");
    }
    Ok(line.trim().to_owned())
}

/// Asks for a secret without echoing it.
pub fn ask_password(label: &str) -> Result<String> {
    if !is_interactive() {
        // No terminal: read the secret from stdin as a plain line.
        return ask(label);
    }
    rpassword::prompt_password(format!("{label}> ")).context("cannot read the password from the terminal")
}

/// Asks a yes/no question; anything but y/yes is no.
pub fn confirm(question: &str) -> Result<bool> {
    if !is_interactive() {
        bail!("{question} Cannot ask without a terminal; pass -f to go ahead.");
    }
    let answer = ask(&format!("{question} [yN]"))?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Lets the user pick one of `items` by number or name; `None` when they
/// just press enter.
pub fn choose(heading: &str, items: &[String]) -> Result<Option<usize>> {
    println!("{heading}");
    for (i, item) in items.iter().enumerate() {
        println!("{}. {item}", i + 1);
    }
    println!();
    let answer = ask("Enter a number or name (or press enter to skip)")?;
    Ok(parse_choice(&answer, items))
}

fn parse_choice(answer: &str, items: &[String]) -> Option<usize> {
    if answer.is_empty() {
        return None;
    }
    if let Ok(n) = answer.parse::<usize>() {
        return (1..=items.len()).contains(&n).then(|| n - 1);
    }
    items.iter().position(|i| i == answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_by_number_or_name() {
        let items = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(parse_choice("2", &items), Some(1));
        assert_eq!(parse_choice("a", &items), Some(0));
        assert_eq!(parse_choice("3", &items), None);
        assert_eq!(parse_choice("0", &items), None);
        assert_eq!(parse_choice("", &items), None);
    }
}
