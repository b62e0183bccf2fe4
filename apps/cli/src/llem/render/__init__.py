"""How the ``llem`` command draws: tables, summaries and progress (Rich), below the commands."""
