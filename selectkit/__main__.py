from selectkit.cli import entrypoint

entrypoint()
