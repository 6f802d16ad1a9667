"""The OHIF Viewer (v3), served by MedPortal itself from the prebuilt dist/ of the npm package ``@ohif/app``.

Installed outside git by bin/test and bin/demo (bin/_npm.sh, version pinned in package.json); the
viewer reads MedPortal's own DICOMweb on the same origin, so the user's session authenticates it.
"""
