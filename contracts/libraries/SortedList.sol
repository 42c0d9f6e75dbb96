// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title SortedList
/// @notice A doubly linked list of addresses sorted by a uint256 key, descending (ties in any order), whose
/// updates take a `(prev, next)` position hint.
/// @dev A correct hint costs O(1). A hint is checked in full (`prev.key >= key >= next.key`, `prev.next == next`,
/// both members) and a wrong or hostile one never yields a wrong order: the position is then found by walking
/// from the node's current position (an update) or from the tail end / the head (an insert), so the cost is
/// bounded by the distance the node actually moves. `address(0)` is the list's end on both sides, so hints
/// `(0, head)` and `(tail, 0)` mean "first" and "last".
library SortedList {
    struct Node {
        uint256 key;
        address prev;
        bool inList;
        address next;
    }

    struct Data {
        address head;
        uint96 size;
        address tail;
        mapping(address => Node) nodes;
    }

    /// @notice Thrown when inserting a node already in the list.
    error NodeExists(address id);
    /// @notice Thrown when updating or removing a node not in the list.
    error NodeMissing(address id);
    /// @notice Thrown when inserting the zero address.
    error InvalidNode(address id);

    function contains(Data storage self, address id) internal view returns (bool) {
        return self.nodes[id].inList;
    }

    function getKey(Data storage self, address id) internal view returns (uint256) {
        return self.nodes[id].key;
    }

    function getNext(Data storage self, address id) internal view returns (address) {
        return self.nodes[id].next;
    }

    function getPrev(Data storage self, address id) internal view returns (address) {
        return self.nodes[id].prev;
    }

    /// @notice Inserts `id` with `key` at the position hinted by `(prevHint, nextHint)`.
    function insert(Data storage self, address id, uint256 key, address prevHint, address nextHint) internal {
        if (id == address(0)) revert InvalidNode(id);
        Node storage node = self.nodes[id];
        if (node.inList) revert NodeExists(id);
        (address prev, address next) = _validHint(self, id, key, prevHint, nextHint, address(0), address(0))
            ? (prevHint, nextHint)
            : _findFromEnds(self, key);
        _link(self, node, id, key, prev, next);
        self.size += 1;
    }

    /// @notice Changes the key of `id` to `newKey` and moves it to the position hinted by `(prevHint, nextHint)`.
    function update(Data storage self, address id, uint256 newKey, address prevHint, address nextHint) internal {
        Node storage node = self.nodes[id];
        if (!node.inList) revert NodeMissing(id);
        address curPrev = node.prev;
        address curNext = node.next;
        bool hinted = (prevHint != curPrev || nextHint != curNext) && prevHint != id && nextHint != id;
        if (hinted && _validHint(self, id, newKey, prevHint, nextHint, curPrev, curNext)) {
            _unlink(self, curPrev, curNext);
            _link(self, node, id, newKey, prevHint, nextHint);
            return;
        }
        if (curPrev != address(0) && self.nodes[curPrev].key < newKey) {
            // Moves up: walk toward the head from the current position.
            address p = self.nodes[curPrev].prev;
            while (p != address(0) && self.nodes[p].key < newKey) {
                p = self.nodes[p].prev;
            }
            address q = p == address(0) ? self.head : self.nodes[p].next;
            _unlink(self, curPrev, curNext);
            _link(self, node, id, newKey, p, q);
        } else if (curNext != address(0) && self.nodes[curNext].key > newKey) {
            // Moves down: walk toward the tail from the current position.
            address q = self.nodes[curNext].next;
            while (q != address(0) && self.nodes[q].key > newKey) {
                q = self.nodes[q].next;
            }
            address p = q == address(0) ? self.tail : self.nodes[q].prev;
            _unlink(self, curPrev, curNext);
            _link(self, node, id, newKey, p, q);
        } else {
            node.key = newKey;
        }
    }

    /// @notice Removes `id`.
    function remove(Data storage self, address id) internal {
        Node storage node = self.nodes[id];
        if (!node.inList) revert NodeMissing(id);
        _unlink(self, node.prev, node.next);
        delete self.nodes[id];
        self.size -= 1;
    }

    /// @dev Whether `(prev, next)` is a correct position for `key` in the list without `id` (whose neighbours are
    /// `curPrev`, `curNext`; both zero when `id` is not in the list): adjacent members (or ends) with
    /// `prev.key >= key >= next.key`.
    function _validHint(
        Data storage self,
        address id,
        uint256 key,
        address prev,
        address next,
        address curPrev,
        address curNext
    ) private view returns (bool) {
        if (prev == address(0)) {
            address head = self.head;
            if (head == id) head = curNext;
            if (next != head) return false;
        } else {
            Node storage p = self.nodes[prev];
            if (!p.inList || p.key < key) return false;
            address pNext = p.next;
            if (pNext == id) pNext = curNext;
            if (pNext != next) return false;
        }
        if (next == address(0)) {
            address tail = self.tail;
            if (tail == id) tail = curPrev;
            return prev == tail;
        }
        return self.nodes[next].key <= key;
    }

    /// @dev Position of a new key: after the tail when it is the smallest (O(1)), else walking from the head.
    function _findFromEnds(Data storage self, uint256 key) private view returns (address prev, address next) {
        address tail = self.tail;
        if (tail == address(0) || self.nodes[tail].key >= key) return (tail, address(0));
        next = self.head;
        while (next != address(0) && self.nodes[next].key >= key) {
            next = self.nodes[next].next;
        }
        prev = next == address(0) ? tail : self.nodes[next].prev;
    }

    function _link(Data storage self, Node storage node, address id, uint256 key, address prev, address next)
        private
    {
        node.key = key;
        node.prev = prev;
        node.inList = true;
        node.next = next;
        if (prev == address(0)) self.head = id;
        else self.nodes[prev].next = id;
        if (next == address(0)) self.tail = id;
        else self.nodes[next].prev = id;
    }

    function _unlink(Data storage self, address prev, address next) private {
        if (prev == address(0)) self.head = next;
        else self.nodes[prev].next = next;
        if (next == address(0)) self.tail = prev;
        else self.nodes[next].prev = prev;
    }
}
