"""ce.engine"""
