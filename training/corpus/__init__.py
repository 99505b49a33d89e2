"""A tagged corpus rendered offline from General MIDI arrangements made in code.

`arrangements` decides what plays (and so the exact tags), `render` plays it through a
SoundFont and varies the sound, `build` writes N clips, a tracks table `mre train --tracks`
reads, and a manifest. Run it as `mre corpus build --out DIR ...`.
"""
