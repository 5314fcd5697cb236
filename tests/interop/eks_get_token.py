#!/usr/bin/env python3
"""Run awscli's real `aws eks get-token` at a fixed signing time.

Usage: eks_get_token.py YYYYMMDDTHHMMSSZ [aws eks get-token arguments...]

The clock botocore and awscli read is pinned to the given time, so the token can be
compared byte for byte with one rolesh signed at that time. Nothing else is changed:
credentials, region and endpoint settings come from the environment, as for `aws`.
"""
import datetime
import sys
from unittest import mock

import awscli.clidriver
import awscli.customizations.eks.get_token as get_token
import botocore.auth


def main():
    when = datetime.datetime.strptime(sys.argv[1], "%Y%m%dT%H%M%SZ")
    clock = mock.Mock(return_value=when)
    with mock.patch.object(botocore.auth, "get_current_datetime", clock), \
         mock.patch.object(get_token, "get_current_datetime", clock):
        driver = awscli.clidriver.create_clidriver()
        return driver.main(["eks", "get-token"] + sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
