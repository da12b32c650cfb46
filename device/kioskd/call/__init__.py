"""The pure call core: states, events, effects and the machine. No I/O."""
