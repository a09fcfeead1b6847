pub mod cli_run;
pub mod envoi_process;
