// SPDX-License-Identifier: MIT
// tapedeck's atomic arbitrage executor (compiled by solc-js at bootstrap, `make contracts`; see
// sim/chain/arb_executor.py for how the sim deploys, encodes routes for and predicts it).
//
// One transaction: `amountIn` of `token` goes through `route` (Uniswap V2 pairs and V3 pools,
// called directly: no router; two pools, a triangle, any closed cycle) and must come back as
// `token`; the transaction reverts unless the executor's balance of `token` grew by at least
// `minProfit`, so an arbitrage whose pools moved first (a competitor in the same block) costs only
// gas and no leg ever goes through alone. Funding:
//   * `flash == false`: the executor's own balance pays the first hop (it must hold `amountIn`);
//   * `flash == true`: a flash swap on the first hop. A V2 pair is asked for its output with
//     callback data (`uniswapV2Call`), a V3 pool's exact-input swap pays out before it asks to be
//     paid (`uniswapV3SwapCallback`); inside that callback the rest of the route runs on what the
//     first pool sent, and the first pool is paid `amountIn` from the proceeds. No capital needed.
// Profit goes to the owner at once, in `token`. `msg.value`, if any, is paid to the block's
// coinbase (a bundle's payment to the builder besides its priority fee).
pragma solidity 0.8.37;

interface IERC20Arb {
    function balanceOf(address) external view returns (uint256);
}

interface IUniswapV2PairArb {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IUniswapV3PoolArb {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96,
                  bytes calldata data) external returns (int256, int256);
}

contract ArbExecutor {
    /// One hop of a route: a V2 pair (`v3 == false`) or a V3 pool, swapped exact-in, whole amount.
    struct Hop {
        address pool;
        bool v3;
    }

    error NotOwner(address caller);
    error BadCallback(address caller);
    error RouteTooShort(uint256 hops);
    error RouteDoesNotEnd(address token, address start);
    error TokenNotInPool(address token, address pool);
    error ProfitBelowMinimum(int256 profit, uint256 minProfit);
    error TransferFailed(address token, address to, uint256 amount);
    error CoinbasePaymentFailed(uint256 amount);

    /// The executor's own account of one arbitrage (receipts carry it: outcomes are booked from it).
    event Arbitraged(address indexed token, uint256 amountIn, uint256 amountOut, uint256 profit, uint256 hops,
                     bool flash);

    uint160 private constant MIN_SQRT_RATIO_PLUS_1 = 4295128740;
    uint160 private constant MAX_SQRT_RATIO_MINUS_1 = 1461446703485210103287273052203988822378723970341;

    address public immutable owner;
    address private transient activePool; // the pool whose callback is expected now (EIP-1153)
    uint256 private transient flashOut; // the route's final output, computed inside the first hop's callback

    constructor() {
        owner = msg.sender;
    }

    receive() external payable {}

    /// Owner-only. Returns the profit (also in the `Arbitraged` log), sent to the owner.
    function arbitrage(address token, uint256 amountIn, Hop[] calldata route, uint256 minProfit, bool flash)
        external payable returns (uint256 profit) {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        if (route.length < 2) revert RouteTooShort(route.length);
        Hop[] memory hops = route;
        uint256 before = IERC20Arb(token).balanceOf(address(this));
        uint256 amountOut = flash ? _flash(token, amountIn, hops, minProfit) : _own(token, amountIn, hops);
        int256 gained = int256(IERC20Arb(token).balanceOf(address(this))) - int256(before);
        if (gained < int256(minProfit)) revert ProfitBelowMinimum(gained, minProfit);
        profit = uint256(gained);
        _transfer(token, owner, profit);
        emit Arbitraged(token, amountIn, amountOut, profit, route.length, flash);
        if (msg.value != 0) {
            (bool ok,) = block.coinbase.call{value: msg.value}("");
            if (!ok) revert CoinbasePaymentFailed(msg.value);
        }
    }

    function _own(address token, uint256 amountIn, Hop[] memory hops) private returns (uint256) {
        (address end, uint256 out) = _hops(token, amountIn, hops, 0);
        if (end != token) revert RouteDoesNotEnd(end, token);
        return out;
    }

    /// The first hop pays out before it is paid: the rest of the route runs in its callback.
    function _flash(address token, uint256 amountIn, Hop[] memory hops, uint256 minProfit)
        private returns (uint256 out) {
        Hop memory first = hops[0];
        (bool zeroForOne,,) = _side(first.pool, token);
        bytes memory data = abi.encode(true, token, amountIn, minProfit, hops);
        activePool = first.pool;
        if (first.v3) {
            IUniswapV3PoolArb(first.pool).swap(address(this), zeroForOne, int256(amountIn),
                                               zeroForOne ? MIN_SQRT_RATIO_PLUS_1 : MAX_SQRT_RATIO_MINUS_1, data);
        } else {
            uint256 got = _v2Out(first.pool, zeroForOne, amountIn);
            (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), got) : (got, uint256(0));
            IUniswapV2PairArb(first.pool).swap(out0, out1, address(this), data);
        }
        activePool = address(0);
        out = flashOut;
        flashOut = 0;
    }

    /// Runs the route after its first hop's flash payout, then pays the first pool what it is owed
    /// (`amountIn`; a V3 pool that ran out of liquidity before the limit says less). A route that
    /// does not return what it owes plus `minProfit` reverts here, with its (negative) profit.
    function _afterFlash(address pool, uint256 received, uint256 owed, bytes calldata data) private {
        (, address token,, uint256 minProfit, Hop[] memory hops) =
            abi.decode(data, (bool, address, uint256, uint256, Hop[]));
        (, , address tokenOut) = _side(pool, token);
        (address end, uint256 out) = _hops(tokenOut, received, hops, 1);
        if (end != token) revert RouteDoesNotEnd(end, token);
        if (out < owed + minProfit) revert ProfitBelowMinimum(int256(out) - int256(owed), minProfit);
        flashOut = out;
        _transfer(token, pool, owed);
    }

    function _hops(address token, uint256 amount, Hop[] memory hops, uint256 from)
        private returns (address, uint256) {
        for (uint256 i = from; i < hops.length; i++) {
            (token, amount) = hops[i].v3 ? _swapV3(hops[i].pool, token, amount) : _swapV2(hops[i].pool, token, amount);
        }
        return (token, amount);
    }

    /// (zeroForOne, token0, the other token) of paying `tokenIn` to `pool`.
    function _side(address pool, address tokenIn) private view returns (bool, address, address) {
        address token0 = IUniswapV2PairArb(pool).token0(); // V2 and V3 share token0()/token1()
        address token1 = IUniswapV2PairArb(pool).token1();
        if (tokenIn != token0 && tokenIn != token1) revert TokenNotInPool(tokenIn, pool);
        return tokenIn == token0 ? (true, token0, token1) : (false, token1, token0);
    }

    /// UniswapV2Library.getAmountOut (0.3 %) on the pair's reserves now.
    function _v2Out(address pair, bool zeroForOne, uint256 amountIn) private view returns (uint256) {
        (uint112 r0, uint112 r1,) = IUniswapV2PairArb(pair).getReserves();
        (uint256 rIn, uint256 rOut) = zeroForOne ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 withFee = amountIn * 997;
        return withFee * rOut / (rIn * 1000 + withFee);
    }

    /// Paid in first, as the router does.
    function _swapV2(address pair, address tokenIn, uint256 amountIn) private returns (address, uint256) {
        (bool zeroForOne,, address tokenOut) = _side(pair, tokenIn);
        uint256 out = _v2Out(pair, zeroForOne, amountIn);
        _transfer(tokenIn, pair, amountIn);
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), out) : (out, uint256(0));
        IUniswapV2PairArb(pair).swap(out0, out1, address(this), "");
        return (tokenOut, out);
    }

    /// An exact-input V3 swap with no price limit; the pool is paid in the callback.
    function _swapV3(address pool, address tokenIn, uint256 amountIn) private returns (address, uint256) {
        (bool zeroForOne,, address tokenOut) = _side(pool, tokenIn);
        address outer = activePool; // a flash hop's callback may be running: put it back after
        activePool = pool;
        (int256 d0, int256 d1) = IUniswapV3PoolArb(pool).swap(
            address(this), zeroForOne, int256(amountIn), zeroForOne ? MIN_SQRT_RATIO_PLUS_1 : MAX_SQRT_RATIO_MINUS_1,
            abi.encode(false, tokenIn));
        activePool = outer;
        return (tokenOut, uint256(-(zeroForOne ? d1 : d0)));
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external {
        if (msg.sender != activePool || msg.sender == address(0)) revert BadCallback(msg.sender);
        bool isFlash = abi.decode(data[:32], (bool));
        if (isFlash) {
            (uint256 owed, uint256 received) = amount0Delta > 0
                ? (uint256(amount0Delta), uint256(-amount1Delta)) : (uint256(amount1Delta), uint256(-amount0Delta));
            _afterFlash(msg.sender, received, owed, data);
            return;
        }
        (, address tokenIn) = abi.decode(data, (bool, address));
        _transfer(tokenIn, msg.sender, uint256(amount0Delta > 0 ? amount0Delta : amount1Delta));
    }

    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external {
        if (msg.sender != activePool || msg.sender == address(0) || sender != address(this)) {
            revert BadCallback(msg.sender);
        }
        (,, uint256 amountIn,,) = abi.decode(data, (bool, address, uint256, uint256, Hop[]));
        _afterFlash(msg.sender, amount0 + amount1, amountIn, data);
    }

    /// Owner sweeps anything left here (ETH when `token` is zero).
    function withdraw(address token, uint256 amount) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        if (token == address(0)) {
            (bool ok,) = owner.call{value: amount}("");
            if (!ok) revert TransferFailed(token, owner, amount);
        } else {
            _transfer(token, owner, amount);
        }
    }

    function _transfer(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(0xa9059cbb, to, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(token, to, amount);
    }
}
