"""The operator app (PySide6): the only package that imports Qt.

Layout: ``app.py`` (entry point), ``main_window.py`` (tabs), ``station_controller.py`` (the
station in its own threads, polled by timers), ``models/`` (Qt item models over the store),
``widgets/`` (drawing widgets), ``views/`` (tab pages), ``dialogs.py`` (log-in, class picker).
"""
