//! `convnet ocr`: render a text line with a font; training and reading come later.

use std::path::PathBuf;

use anyhow::Context;
use convnet::data::letters::{render_line, Font, WINDOW};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Render a line of text with a font file into a PNG (dark ink on white)
    Render {
        /// The text to draw
        text: String,
        /// A TrueType/OpenType font file
        #[arg(long)]
        font: PathBuf,
        /// Output PNG file
        out: PathBuf,
        /// Line height in pixels (the reader expects 32: x-height 12 px)
        #[arg(long, default_value_t = WINDOW)]
        height: usize,
    },
    /// Train a letters network on fonts (not yet available)
    Train {
        /// Folder searched for fonts
        #[arg(long, default_value = convnet::data::letters::DEFAULT_FONT_DIR)]
        fonts: PathBuf,
        /// Folder for the model and its history
        #[arg(long, default_value = "runs/ocr")]
        out: PathBuf,
    },
    /// Read a line picture with a letters model (not yet available)
    Read {
        /// Model file from `convnet ocr train`
        model: PathBuf,
        /// Picture of one line of text
        line: PathBuf,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Render {
            text,
            font,
            out,
            height,
        } => {
            let font = Font::load(&font)?;
            let line = render_line(&font, &text, height)?;
            line.save_png(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {}x{} px, \"{text}\" in {} {}",
                out.display(),
                line.width,
                line.height,
                font.family(),
                font.style()
            );
            Ok(())
        }
        Command::Train { .. } => anyhow::bail!("ocr train: not yet available"),
        Command::Read { .. } => anyhow::bail!("ocr read: not yet available"),
    }
}
