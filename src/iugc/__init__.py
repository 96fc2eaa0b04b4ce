"""iugc: a reproducible study of landmark detection and Angle of Progression in intrapartum
transperineal ultrasound (Krishna & Khan, IUGC 2025), from data to report."""

__version__ = "0.1.0"
