"""The app's screens and dialogs, one module per journey (see DESIGN §2)."""
