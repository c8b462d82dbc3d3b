
#compdef soul

_soul_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _SOUL_COMPLETE=complete_zsh soul)
}

compdef _soul_completion soul

