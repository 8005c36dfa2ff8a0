"""Widgets of the app's own: the virtualised timeline and the QR code."""
