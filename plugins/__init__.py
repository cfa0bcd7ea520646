"""Built-in domain plugins (user, auth, upload) live here, one package each."""
