"""The compute API's everyday resources beyond servers and flavors (issue 20), answered from the
store: key pairs, flavor management, availability zones, addresses, server groups, instance
actions, quota sets, usage and console output.  One module per resource; ``table`` routes them.
"""
